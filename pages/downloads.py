"""Downloads a page links to, signed in by the pages' cookie: the caseload as CSV and a patient's
progress report as PDF (the FHIR export is dashboard/api/fhir.py's).

Each reads through the store as the signed-in principal (an unreadable patient is not found) and is
one audit row (dashboard/store/exports.py). As the FHIR export, a download the browser was sent to
from another site is refused. The CSV's filters are the caseload page's own (pages/caseload.py's
CaseloadView filters and sorts it, so the file has the page's rows in the page's order); its address
carries the status, therapist and sort, never the search text, which may be a name or an identifier:
the page's Download CSV button sends the file over its socket instead (`send_caseload_csv`).
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from nicegui import APIRouter, ui

from dashboard.errors import NotAuthenticated
from dashboard.exports.caseload_csv import caseload_csv
from dashboard.exports.progress_report import ProgressReport
from dashboard.exports.report_pdf import report_pdf
from dashboard.store import CaseloadRow
from dashboard.store.read import is_object_id
from pages import auth
from pages.caseload import CaseloadView
from pages.report import load_report

router = APIRouter()
CSV_PATH = "/caseload.csv"
# PDFs built at once (CPU work, about the machine's cores); more wait in their worker threads, never
# on the event loop.
PDF_BUILDS = threading.BoundedSemaphore(2)
# The caseload page's "Sort by" choices (pages/caseload.py), by the names its view uses.
SORTS = ("name", "status", "follow_ups", "last_session", "equipment")


def _build_pdf(report: ProgressReport) -> bytes:
    with PDF_BUILDS:
        return report_pdf(report)


def _pick(session: auth.PageSession, *, search: str = "", status: str = "", therapist_id: str = "",
          sort: str = "name") -> Callable[[list[CaseloadRow]], list[CaseloadRow]]:
    """The caseload page's own filter and sort over the rows the store hands the export."""
    def pick(rows: list[CaseloadRow]) -> list[CaseloadRow]:
        view = CaseloadView(session)
        view.rows = {r.object_id: r for r in rows}
        view.search, view.status, view.therapist_id, view.sort = search, status, therapist_id, sort
        return view.ordered()
    return pick


async def caseload_file(session: auth.PageSession, **filters: str) -> tuple[str, str]:
    """(file name, CSV text) of the caseload as `session` sees it with the page's filters."""
    rows = await session.store.exports.caseload_export(principal=session.principal, pick=_pick(session, **filters))
    text = caseload_csv(rows, session.store.catalogue, private_columns=not session.permissions().is_viewer)
    return f"caseload-{datetime.now().astimezone():%Y%m%d-%H%M}.csv", text


async def send_caseload_csv(view: CaseloadView) -> None:
    """The caseload page's button: the rows on screen, filters and search included, as a file."""
    if getattr(view, "showing", "current") != "current":
        ui.notify("The CSV lists current patients: show Current patients to download it.", type="warning")
        return
    try:
        name, text = await caseload_file(view.session, search=view.search, status=view.status,
                                         therapist_id=view.therapist_id, sort=view.sort)
    except NotAuthenticated:
        ui.navigate.to("/login")
        return
    ui.download.content(text.encode(), name, "text/csv")


async def _download_session(request: Request) -> auth.PageSession | Response:
    # SameSite=lax still sends the cookie on another site's link; a download is not for it (as FHIR's).
    if auth.cross_site(request):
        return PlainTextResponse("Cross-site downloads are refused.", status_code=403)
    session = await auth.session_of(request)
    return auth.to_login(request) if session is None else session


def _filters(request: Request, session: auth.PageSession) -> dict[str, str]:
    """The address's filters; ValueError naming the parameter and its rule."""
    allowed = {"status": "status", "therapist": "therapist_id", "sort": "sort"}
    for name in request.query_params:
        if name == "search":
            raise ValueError("search: is not taken in an address (it may hold a name or an identifier); "
                             "use the caseload page's Download CSV button")
        if name not in allowed:
            raise ValueError(f"{name[:40]}: is not a parameter of {CSV_PATH} (status, therapist, sort)")
    values = {allowed[k]: request.query_params.get(k, "").strip() for k in allowed}
    statuses = session.store.catalogue.vocabulary["mobilityStatus"]
    if values["status"] and values["status"] not in statuses:
        raise ValueError(f"status: must be one of {', '.join(statuses)}")
    if values["therapist_id"] and not is_object_id(values["therapist_id"]):
        raise ValueError("therapist: must be a user's objectId")
    if values["sort"] and values["sort"] not in SORTS:
        raise ValueError(f"sort: must be one of {', '.join(SORTS)}")
    values["sort"] = values["sort"] or "name"
    return values


@router.get(CSV_PATH, include_in_schema=False)
async def caseload_download(request: Request) -> Response:
    session = await _download_session(request)
    if isinstance(session, Response):
        return session
    try:
        name, text = await caseload_file(session, **_filters(request, session))
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    except NotAuthenticated:
        return auth.to_login(request)
    return Response(text.encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/patient/{object_id}/report.pdf", include_in_schema=False)
async def report_download(request: Request, object_id: str) -> Response:
    session = await _download_session(request)
    if isinstance(session, Response):
        return session
    report = await load_report(request, session, object_id, "report-pdf")
    if isinstance(report, Response):
        return report
    body = await asyncio.to_thread(_build_pdf, report)  # fpdf2 is CPU work: off the event loop
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{report.file_name}"',
                             "Cache-Control": "no-store"})
