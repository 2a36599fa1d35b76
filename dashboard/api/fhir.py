"""GET /fhir/Patient/{objectId}/$everything: one patient's records as a FHIR R4 Bundle.

Two ways in, both the ones the app already has: Parse's headers (X-Parse-Application-Id and
X-Parse-Session-Token, decoded by the REST API's own `decode_request`), or the pages' signed
session cookie (pages.auth, whose rule of what a role may open applies then too), so a page can
link to the export. The store decides what the caller may read (an unknown patient and an
unreadable one get the same 404) and audits the export; dashboard/fhir.py maps the records.
Errors are Parse's {"code","error"}, as /parse answers.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from dashboard import fhir
from dashboard.access import Principal
from dashboard.api.rest import ParseApi, error_response, param_error, decode_request
from dashboard.config import Settings
from dashboard.errors import NotAuthenticated, NotFound, PermissionDenied
from dashboard.store import Store

MOUNT = "/fhir"
EVERYTHING = MOUNT + "/Patient/{object_id}/$everything"


def everything_url(object_id: str) -> str:
    """Where a page links for a patient's export (the object id only: never PHI in a URL)."""
    return f"{MOUNT}/Patient/{object_id}/$everything"


class FhirEndpoint:
    def __init__(self, settings: Settings, get_store: Callable[[], Store], rest: ParseApi):
        self.settings = settings
        self.get_store = get_store
        # REST's API object: its session lookup, and its places for heavy reads (an export is one).
        self.rest = rest

    async def principal(self, request: Request) -> Principal | None:
        if any(name.startswith("x-parse-") for name in request.headers):
            call = await decode_request(request, request.url.path, self.settings)
            return await self.rest.principal(call)
        return await self._cookie_principal(request)

    async def _cookie_principal(self, request: Request) -> Principal:
        if not request.cookies:
            raise NotAuthenticated()
        from pages import auth  # the pages' cookie (configured when the pages are registered)

        token = auth.token_from_cookie(request.cookies.get(auth.cookie_name()))
        if token is None:
            raise NotAuthenticated()
        # SameSite=lax still sends the cookie on another site's link; a download is not for it.
        if auth.cross_site(request):
            raise PermissionDenied("Cross-site requests with the session cookie are refused")
        store = self.get_store()
        principal = await store.resolve_session(token)
        # By the pages' cookie, the pages' rule of what a role opens (pages.auth.may_open): for a
        # viewer (a ward screen, the ward board only) the export is not found, as an unknown patient.
        if not auth.may_open(store.permissions(principal=principal), request.url.path):
            raise NotFound()
        return principal

    async def everything(self, request: Request) -> Response:
        try:
            if request.query_params:
                name = next(iter(request.query_params))
                raise param_error(f"{name[:40]} is not a supported parameter of $everything")
            principal = await self.principal(request)
            store = self.get_store()
            address = request.client.host if request.client else None
            async with self.rest.heavy_place(principal, address):
                records = await store.patient_everything(principal=principal,
                                                         patient_id=request.path_params["object_id"])
            bundle = fhir.patient_bundle(records, store.catalogue, base_url=str(request.base_url),
                                         now=store.clock())
        except Exception as exc:  # noqa: BLE001 - every failure is a Parse error answer (as /parse)
            return error_response(exc)
        body = json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(body, media_type=fhir.MEDIA_TYPE, headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="patient-{fhir.fhir_id(records.patient.id)}.fhir.json"'})
