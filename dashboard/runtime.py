"""The running process's store: started with the server, reached by pages and the API."""
from __future__ import annotations

import gc

from dashboard import log_privacy
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.store import Store

_store: Store | None = None


def store() -> Store:
    if _store is None:
        raise RuntimeError("the store is not started; run the app through `python -m dashboard serve`")
    return _store


async def start(settings: Settings) -> Store:
    global _store
    log_privacy.install()  # after uvicorn's logging is configured: its handlers get the filter too
    if _store is None:
        instance = Store(Database(settings.database_url), settings=settings)
        await instance.start()
        _store = instance
    return _store


def settle_garbage_collector() -> None:
    """Keeps full collections off the push path.

    A full (generation 2) collection walks every object in the process; with a thousand open sockets
    that took up to 190 ms, and it struck during deliveries. Everything alive once the server has
    started (modules, NiceGUI, SQLAlchemy's compiled caches, the access index) is frozen out of
    collection, and collections run less often. Cyclic garbage is still collected.
    Listed with the other fast paths in dashboard/FAST-PATHS.md.
    """
    gc.collect()
    gc.freeze()
    # A closed page is cyclic garbage (NiceGUI's elements refer to themselves), and it lives long
    # enough to reach the oldest generation: full collections every ~1M net allocations, not ~20M
    # (pages built and closed piled up by the thousand, 2 GB, before one ran).
    gc.set_threshold(10_000, 10, 10)


async def stop() -> None:
    global _store
    if _store is not None:
        await _store.stop()
        await _store.db.dispose()
        _store = None
