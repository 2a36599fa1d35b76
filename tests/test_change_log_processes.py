"""The change log across real processes: a server killed between its commit and its push loses
nothing. Two servers share one PostgreSQL; A dies (os._exit, as a kill -9 would leave it) right
after committing a score and before handing the change to its own applier; B's live-query
subscriber still gets the event, from the log, and A catches up when it starts again.
PostgreSQL only: SQLite is one process."""
from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import aiohttp
import pytest

from bench.clients import APP_ID, Arrivals, LiveQueryClient, RestClient, new_score, patient_query
from bench.server import Server
from tests.conftest import PG_URL, _drop_postgres
from tests.support import TEST_SETTINGS

DEMO_PASSWORD = "demo-password-2026"  # data/demo.json

# In A's process only: the hand-off after a score's commit ends the process instead.
CRASH_AFTER_COMMIT = """
import os
import dashboard.changes as _changes
_committed = _changes.ChangeFeed.committed
async def _crash_after_commit(self, seq, changes):
    if any(getattr(c, "class_name", None) == "MobilityScore" for c in changes):
        os._exit(9)  # committed, not yet pushed: the moment a kill -9 would leave behind
    return await _committed(self, seq, changes)
_changes.ChangeFeed.committed = _crash_after_commit
"""


async def _empty_database(url: str) -> str | None:
    """A new, empty database (the servers migrate it); why PostgreSQL cannot be used, or None."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                                      password=parsed.password, database="postgres"), 3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        return f"PostgreSQL not answering at {parsed.host}:{parsed.port or 5432} ({type(exc).__name__})"
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await conn.close()
    return None


@pytest.fixture
def shared_postgres():
    url = PG_URL.rsplit("/", 1)[0] + f"/ot_tracker_processes_{os.getpid()}"
    reason = asyncio.run(_empty_database(url))
    if reason:
        pytest.skip(reason)
    yield url
    asyncio.run(_drop_postgres(url))


def _status(server: Server) -> dict:
    with urllib.request.urlopen(f"{server.url}/status", timeout=5) as response:
        return json.load(response)


async def _log_in(rest: RestClient, username: str) -> str:
    async with rest.session.post(f"{rest.base}/login", data=json.dumps({"username": username, "password": DEMO_PASSWORD}),
                                 headers=rest.headers(None)) as response:
        assert response.status == 200
        return (await response.json(content_type=None))["sessionToken"]


async def test_a_server_killed_between_commit_and_push_loses_no_event(tmp_path, shared_postgres):
    settings = {**TEST_SETTINGS, "OT_PARSE_APP_ID": APP_ID}
    a = Server(tmp_path / "a", database_url=shared_postgres, settings=settings, preamble=CRASH_AFTER_COMMIT)
    b = Server(tmp_path / "b", database_url=shared_postgres, settings=settings)
    for server in (a, b):
        server.data_dir.mkdir()
    a.load_demo()  # migrates the shared database and loads the demo once
    b.load_demo()  # finds it loaded
    a.start()
    b.start()
    rest_a, rest_b = RestClient(a.url), RestClient(b.url)
    session = aiohttp.ClientSession()
    subscriber = None
    try:
        token = await _log_in(rest_b, "therapist")
        _, found = await rest_b.find("Patient", {}, token, limit=1)
        pid = found["results"][0]["objectId"]
        arrivals = Arrivals(expected=1)
        subscriber = LiveQueryClient(b.ws_url, token, arrivals)
        await subscriber.open(session, patient_query(pid))

        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            await rest_a.create("MobilityScore", new_score(pid, 61), token)  # A never answers
        assert a.process is not None and a.process.wait(timeout=10) == 9

        # The score is stored once, and B's subscriber gets it from the log (B's heartbeat reads it).
        _, stored = await rest_b.find("MobilityScore", {"patient": {"__type": "Pointer", "className": "Patient",
                                                                    "objectId": pid}, "scoreValue": 61}, token)
        [score] = stored["results"]
        assert await arrivals.wait(score["objectId"], timeout=5)
        assert arrivals.times[score["objectId"]] and subscriber.errors == []

        a.process = None
        a.start()  # A again: it starts from the log's head, as far as B has applied
        assert _status(a)["changes"]["applied"] >= _status(b)["changes"]["applied"] > 0
    finally:
        if subscriber is not None:
            await subscriber.close()
        await session.close()
        await rest_a.close()
        await rest_b.close()
        a.stop()
        b.stop()
    assert a.logged_errors() == [] and b.logged_errors() == []
