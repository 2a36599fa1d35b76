"""A per-request pointer loader: every pointer asked for in one step of execution is one
`store.get_many` per class, and an id is read once per request (GRAPHQL.md §9, "No N+1")."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dashboard.access import Principal
from dashboard.serialize import to_parse
from dashboard.store import Store


class PointerLoader:
    def __init__(self, store: Store, principal: Principal | None):
        self.store = store
        self.principal = principal
        self.found: dict[tuple[str, str], asyncio.Future[dict[str, Any] | None]] = {}
        self.pending: dict[str, list[str]] = {}
        self.reads = 0  # store reads made (tests count them)
        self._tasks: set[asyncio.Task[None]] = set()

    def prime(self, obj: Mapping[str, Any]) -> None:
        """An object already read (a find's row, a mutation's answer) needs no second read."""
        key = (obj["className"], obj["objectId"])
        if key not in self.found:
            future = asyncio.get_running_loop().create_future()
            future.set_result(dict(obj))
            self.found[key] = future

    def known(self, class_name: str, object_id: str) -> asyncio.Future[dict[str, Any] | None] | None:
        """The read of that object if this request has made it (done or still on its way)."""
        return self.found.get((class_name, object_id))

    def load(self, class_name: str, object_id: str) -> asyncio.Future[dict[str, Any] | None]:
        """The object as the principal may read it, or None; batched with every load of this step."""
        key = (class_name, object_id)
        future = self.found.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self.found[key] = loop.create_future()
            if not self.pending:
                # Resolvers of one list all run before the loop turns: they share this batch.
                loop.call_soon(self._dispatch)
            self.pending.setdefault(class_name, []).append(object_id)
        return future

    def _dispatch(self) -> None:
        batch, self.pending = self.pending, {}
        for class_name, ids in batch.items():
            task = asyncio.ensure_future(self._fetch(class_name, ids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, class_name: str, ids: list[str]) -> None:
        self.reads += 1
        try:
            found = await self.store.get_many(principal=self.principal, class_name=class_name, object_ids=ids)
        except Exception as exc:  # noqa: BLE001 - each waiting field gets the store's error
            for object_id in ids:
                future = self.found[(class_name, object_id)]
                if not future.done():
                    future.set_exception(exc)
            return
        for object_id in ids:
            future = self.found[(class_name, object_id)]
            if not future.done():
                record = found.get(object_id)
                future.set_result(to_parse(record) if record is not None else None)
