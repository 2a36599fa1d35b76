"""Minimal asyncio clients of the public interfaces, written against shared/spec/PARSE-API.md.

REST: `POST SERVER/parse/classes/C` with X-Parse-* headers. Live queries: the websocket at
ws://SERVER/parse (connect, subscribe, then create/enter/update/leave/delete events).
Clients record arrival times with time.perf_counter(), which on Linux is CLOCK_MONOTONIC and so
comparable across processes on the machine.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

APP_ID = "ot-tracker"
EVENT_OPS = frozenset({"create", "enter", "update"})


def pointer(class_name: str, object_id: str) -> dict[str, str]:
    return {"__type": "Pointer", "className": class_name, "objectId": object_id}


def date(value: Any) -> dict[str, str]:
    from dashboard.serialize import iso

    return {"__type": "Date", "iso": iso(value)}


class BenchError(RuntimeError):
    pass


class RestClient:
    """One aiohttp session (keep-alive pool of `connections`) against SERVER/parse."""

    def __init__(self, server_url: str, *, connections: int = 16, app_id: str = APP_ID):
        self.base = f"{server_url}/parse"
        self.app_id = app_id
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                             timeout=aiohttp.ClientTimeout(total=30))

    def headers(self, token: str | None) -> dict[str, str]:
        out = {"X-Parse-Application-Id": self.app_id, "Content-Type": "application/json"}
        if token:
            out["X-Parse-Session-Token"] = token
        return out

    async def create(self, class_name: str, fields: dict[str, Any], token: str) -> tuple[float, float, dict]:
        """(start, end, body) of one create; raises BenchError on anything but 201."""
        body = json.dumps(fields, default=str)
        start = time.perf_counter()
        async with self.session.post(f"{self.base}/classes/{class_name}", data=body,
                                     headers=self.headers(token)) as response:
            payload = await response.json(content_type=None)
            end = time.perf_counter()
            if response.status != 201:
                raise BenchError(f"create {class_name}: HTTP {response.status} {str(payload)[:300]}")
        return start, end, payload

    async def find(self, class_name: str, where: dict, token: str, *, limit: int = 100,
                   order: str | None = None) -> tuple[float, dict]:
        params = {"where": json.dumps(where), "limit": str(limit)}
        if order:
            params["order"] = order
        start = time.perf_counter()
        async with self.session.get(f"{self.base}/classes/{class_name}", params=params,
                                    headers=self.headers(token)) as response:
            payload = await response.json(content_type=None)
            elapsed = time.perf_counter() - start
            if response.status != 200:
                raise BenchError(f"find {class_name}: HTTP {response.status} {str(payload)[:300]}")
        return elapsed, payload

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Arrivals:
    """objectId -> arrival times over all subscribers; wakes a waiter when `expected` have come."""

    expected: int
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    other: int = 0  # events for ids nobody waited on (should stay 0)

    def add(self, object_id: str, at: float) -> None:
        got = self.times[object_id]
        got.append(at)
        if len(got) >= self.expected:
            self._event(object_id).set()

    def _event(self, object_id: str) -> asyncio.Event:
        event = self.events.get(object_id)
        if event is None:
            event = self.events[object_id] = asyncio.Event()
        return event

    async def wait(self, object_id: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._event(object_id).wait(), timeout)
            return True
        except TimeoutError:
            return False


class LiveQueryClient:
    """One websocket, one subscription; records each event's arrival into `arrivals`."""

    def __init__(self, ws_url: str, token: str, arrivals: Arrivals, *, app_id: str = APP_ID):
        self.ws_url = ws_url
        self.token = token
        self.arrivals = arrivals
        self.app_id = app_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None
        self.errors: list[dict] = []
        self.received = 0

    async def open(self, session: aiohttp.ClientSession, query: dict, *, timeout: float = 20) -> None:
        self.ws = await session.ws_connect(self.ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                           heartbeat=None, max_msg_size=0)
        await self.ws.send_str(json.dumps({"op": "connect", "applicationId": self.app_id,
                                           "sessionToken": self.token,
                                           "installationId": str(uuid.uuid4())}))
        await self._expect("connected", timeout)
        await self.ws.send_str(json.dumps({"op": "subscribe", "requestId": 1, "query": query,
                                           "sessionToken": self.token}))
        await self._expect("subscribed", timeout)
        self.reader = asyncio.create_task(self._read())

    async def _expect(self, op: str, timeout: float) -> dict:
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        for _ in range(100):  # bounded: a handful of messages at most before the answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = await self.ws.receive(timeout=remaining)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BenchError(f"live query: expected {op}, socket said {message.type.name}")
            data = json.loads(message.data)
            if data.get("op") == op:
                return data
            if data.get("op") == "error":
                raise BenchError(f"live query: {data}")
        raise BenchError(f"live query: no {op} within {timeout}s")

    async def _read(self) -> None:
        assert self.ws is not None
        arrivals = self.arrivals
        async for message in self.ws:
            at = time.perf_counter()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            op = data.get("op")
            if op in EVENT_OPS:
                self.received += 1
                arrivals.add(data["object"]["objectId"], at)
            elif op == "error":
                self.errors.append(data)
            self.seen(op, at)
        self.closed(time.perf_counter())

    def seen(self, op: str | None, at: float) -> None:
        """Called for each message once counted (a subclass stamps the ones it times)."""

    def closed(self, at: float) -> None:
        """Called when the socket has closed."""

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


def patient_query(patient_id: str, class_name: str = "MobilityScore") -> dict:
    return {"className": class_name, "where": {"patient": pointer("Patient", patient_id)}}


class Subscribers:
    """N live-query clients over one aiohttp session, opened in bounded batches."""

    def __init__(self, ws_url: str, arrivals: Arrivals):
        self.ws_url = ws_url
        self.arrivals = arrivals
        self.clients: list[LiveQueryClient] = []
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None))

    async def open(self, tokens_and_queries: list[tuple[str, dict]], *, batch: int = 50) -> None:
        for start in range(0, len(tokens_and_queries), batch):
            chunk = [LiveQueryClient(self.ws_url, token, self.arrivals)
                     for token, _ in tokens_and_queries[start:start + batch]]
            await asyncio.gather(*(c.open(self.session, q) for c, (_, q) in
                                   zip(chunk, tokens_and_queries[start:start + batch])))
            self.clients.extend(chunk)

    @property
    def errors(self) -> list[dict]:
        return [e for c in self.clients for e in c.errors]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        self.clients.clear()
        await self.session.close()


def new_score(patient_id: str, value: int = 50) -> dict[str, Any]:
    from datetime import datetime, timezone

    return {"patient": pointer("Patient", patient_id), "scoreType": "barthel", "scoreValue": value,
            "scoreDate": date(datetime.now(timezone.utc))}
