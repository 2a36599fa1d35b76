"""Fixtures for the Parse API: the API mounted on its own FastAPI app around the `world` store.

REST calls go through httpx's ASGI transport; live queries need a real socket, so `lq_url` serves
the same app with uvicorn inside the test's event loop. Both run on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from dashboard import models
from dashboard.api import mount
from tests.support import PASSWORD, eventually

APP_ID = "test-app-id"
USERNAMES = {"lead": "lead", "owner": "owner", "other_therapist": "other-therapist",
             "team_therapist": "team-therapist", "team_contributor": "team-contributor",
             "outsider": "outsider", "viewer": "viewer"}
RECORD_MODELS = (models.User, models.Patient, models.MobilityScore, models.EquipmentLog,
                 models.SessionNote, models.StatusHistory, models.CareTeamMember)


class Api:
    """A client for the API with the world's users signed in (tokens by principal kind)."""

    def __init__(self, client: httpx.AsyncClient, world: Any, tokens: dict[str, str]):
        self.client = client
        self.world = world
        self.store = world.store
        self.tokens = tokens

    def headers(self, who: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"X-Parse-Application-Id": APP_ID}
        if who is not None:
            headers["X-Parse-Session-Token"] = self.tokens[who]
        headers.update(extra)
        return headers

    async def call(self, method: str, path: str, who: str | None = None, *, json: Any = None,
                   params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   content: bytes | str | None = None) -> httpx.Response:
        return await self.client.request(method, f"/parse/{path}", json=json, params=params, content=content,
                                         headers={**self.headers(who), **(headers or {})})

    async def sdk(self, path: str, body: dict[str, Any], who: str | None = None, method: str | None = None) -> httpx.Response:
        """The JS SDK's way: POST text/plain with _method, _ApplicationId and _SessionToken in the body."""
        import json as _json

        payload = dict(body)
        payload["_ApplicationId"] = APP_ID
        payload["_ClientVersion"] = "js8.6.2"
        payload["_InstallationId"] = "0f6c7a46-6c1f-4b1a-9d7c-5f1f1f1f1f1f"
        if method:
            payload["_method"] = method
        if who is not None:
            payload["_SessionToken"] = self.tokens[who]
        return await self.client.post(f"/parse/{path}", content=_json.dumps(payload),
                                      headers={"Content-Type": "text/plain"})

    async def counts(self) -> dict[str, int]:
        async with self.store.db.read() as session:
            return {m.__tablename__: await session.scalar(select(func.count()).select_from(m))
                    for m in RECORD_MODELS}


def api_settings(store: Any, **overrides: Any) -> Any:
    values = {"parse_app_id": APP_ID, "login_rate_per_minute": 1000, "login_address_rate_per_minute": 5000}
    values.update(overrides)
    return dataclasses.replace(store.settings, **values)


def make_app(store: Any, **overrides: Any) -> FastAPI:
    app = FastAPI()
    mount(app, api_settings(store, **overrides), lambda: store)
    return app


async def signed_in(client: httpx.AsyncClient, world: Any) -> dict[str, str]:
    tokens = {}
    for kind, username in USERNAMES.items():
        response = await client.post("/parse/login", json={"username": username, "password": PASSWORD},
                                     headers={"X-Parse-Application-Id": APP_ID})
        assert response.status_code == 200, response.text
        tokens[kind] = response.json()["sessionToken"]
    return tokens


@pytest.fixture
async def api(world):
    app = make_app(world.store)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, world, await signed_in(client, world))


@pytest.fixture
async def lq_url(api):
    """ws:// URL of the same API served by uvicorn in this event loop (for live queries)."""
    import uvicorn

    app = make_app(api.store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or task.done(), timeout=10)  # uvicorn has no "listening" event
    if task.done():
        task.result()  # it failed to start: its exception
    yield f"ws://127.0.0.1:{port}/parse"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()
