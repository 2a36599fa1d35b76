"""The running process's store: started with the server, reached by pages and the API."""
from __future__ import annotations

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
    if _store is None:
        instance = Store(Database(settings.database_url), settings=settings)
        await instance.start()
        _store = instance
    return _store


async def stop() -> None:
    global _store
    if _store is not None:
        await _store.flush_audit()
        await _store.db.dispose()
        _store = None
