"""Fixtures for GraphQL: the API app around the `world` store (tests/api/conftest.py), with a
client that posts operations to /graphql as the world's principals."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import APP_ID, Api, api, lq_url  # noqa: F401 - fixtures used by these tests


class GraphQL:
    def __init__(self, api: Api):  # noqa: F811
        self.api = api
        self.world = api.world
        self.store = api.store

    async def post(self, query: str, variables: dict[str, Any] | None = None, who: str | None = None,
                   *, headers: dict[str, str] | None = None, token: str | None = None) -> httpx.Response:
        sent = {"X-Parse-Application-Id": APP_ID}
        if who is not None:
            sent["X-Parse-Session-Token"] = self.api.tokens[who]
        if token is not None:
            sent["X-Parse-Session-Token"] = token
        sent.update(headers or {})
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.api.client.post("/graphql", json=body, headers=sent)

    async def data(self, query: str, variables: dict[str, Any] | None = None, who: str | None = None) -> dict[str, Any]:
        """The `data` of an operation that must succeed."""
        response = await self.post(query, variables, who)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None, who: str | None = None) -> tuple[int, dict[str, Any]]:
        """The first error of an operation that must fail with a store error: (Parse code, body)."""
        response = await self.post(query, variables, who)
        body = response.json()
        assert response.status_code == 200, body
        assert body.get("errors"), body
        return body["errors"][0]["extensions"]["code"], body


@pytest.fixture
async def gql(api) -> GraphQL:  # noqa: F811
    return GraphQL(api)
