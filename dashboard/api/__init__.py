"""The Parse-compatible API: REST at /parse, live queries on the websocket at /parse, GraphQL
at /graphql, and the FHIR export at /fhir.

`mount` is called by dashboard.server.build on the root app; both channels reach the data only
through the running store (dashboard.runtime), which enforces ACCESS.md.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI

from dashboard.config import Settings
from dashboard.store import Store

if TYPE_CHECKING:
    from dashboard.api.rest import Endpoint


def mount(app: FastAPI, settings: Settings, get_store: Callable[[], Store]) -> Endpoint:
    """Adds the REST routes, the live-query websocket and GraphQL to `app` (tests mount on their own app).
    Returns the REST endpoint, for the served app's ParseLane (dashboard/server.py)."""
    from dashboard.api.fhir import EVERYTHING, FhirEndpoint
    from dashboard.api.graphql.http import MOUNT as GRAPHQL, GraphQLEndpoint
    from dashboard.api.graphql.subscriptions import GraphQLSubscriptions
    from dashboard.api.live_query import LiveQueryServer
    from dashboard.api.rest import MOUNT, build_router

    router, rest, endpoint = build_router(settings, get_store)
    app.include_router(router)
    live = LiveQueryServer(settings, get_store)
    app.add_api_websocket_route(MOUNT, live.serve)
    app.add_api_websocket_route(MOUNT + "/", live.serve)
    graphql = GraphQLEndpoint(settings, get_store, heavy_place=rest.heavy_place)
    app.add_route(GRAPHQL, graphql.handle, methods=["GET", "POST"], include_in_schema=False)
    app.add_api_websocket_route(GRAPHQL, GraphQLSubscriptions(live, graphql).serve)
    app.add_route(EVERYTHING, FhirEndpoint(settings, get_store, rest).everything, methods=["GET"],
                  include_in_schema=False)
    return endpoint
