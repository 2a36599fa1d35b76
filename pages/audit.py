"""Audit, for leads only: who did what to which record, when and with what outcome (filters, keyset
pages, a CSV of the filtered rows), and an access report (which patients one user opened).

A non-lead gets the app's not-found, as for Admin. Everything comes from the store
(dashboard/store/audit.py), which checks the role again and audits each read of the log. A patient
is shown by its opaque objectId, a link to its page; the filters in the CSV's address are objectIds
and dates, never a name or the hospital's identifier.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from nicegui import APIRouter, ui

from dashboard.errors import InvalidInput, NotAuthenticated, NotFound, StoreError
from dashboard.store.audit import ACTIONS, OUTCOMES, AccessReportRow, AuditCursor, AuditPage, AuditRow
from pages import auth
from pages.dialogs import refused_at
from pages.display import local
from pages.frame import PAGE_BUILD_TIMEOUT, frame, page_title, section

router = APIRouter()
PAGE_SIZE = 50
CLASSES = {"Patient": "Patient", "MobilityScore": "Mobility score", "SessionNote": "Session note",
           "EquipmentLog": "Equipment", "StatusHistory": "Status history", "CareTeam": "Care team",
           "_User": "Account", "AuditLog": "Audit log"}
ACTION_LABELS = {"read": "Viewed", "create": "Created", "update": "Changed", "delete": "Deleted",
                 "denied": "Refused (denied or not found)", "login": "Signed in", "logout": "Signed out",
                 "signup": "Signed up", "grant": "Added to care team", "revoke": "Removed from care team",
                 "unlock": "Unlocked", "import": "Imported"}
ROW_ACTIONS = {"read": "viewed", "find": "viewed", "count": "counted", "caseload": "viewed caseload",
               "create": "created", "update": "changed", "delete": "deleted", "login": "signed in",
               "logout": "signed out", "signup": "signed up", "grant": "added to care team",
               "revoke": "removed from care team", "unlock": "unlocked", "import": "imported"}
# Shades whose text on white is at least 4.5:1 (WCAG 1.4.3): Quasar's positive and warning are not.
OUTCOME_COLOURS = {"ok": "green-10", "denied": "red-10", "not_found": "red-10", "unauthenticated": "red-10",
                   "invalid": "deep-orange-10", "conflict": "deep-orange-10", "rate_limited": "deep-orange-10"}

CSS = """
.au-row { display: grid; grid-template-columns: 170px minmax(110px, .8fr) 130px minmax(150px, 1.2fr)
  minmax(110px, .8fr) 120px minmax(100px, 1fr); gap: 10px; align-items: center; padding: 6px 4px;
  border-bottom: 1px solid var(--ot-line); width: 100%; font-size: .9rem; }
.au-rep { display: grid; grid-template-columns: minmax(130px, 1fr) 90px 190px 190px; gap: 10px;
  align-items: center; padding: 6px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.au-head { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--ot-muted); font-weight: 600; }
.au-mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
@media (max-width: 1023px) { .au-row { grid-template-columns: 150px 1fr 110px 1fr 100px; }
  .au-row > .c-detail, .au-row > .c-patient { display: none; } }
"""


def when_text(moment: datetime | None) -> str:
    moment = local(moment)
    return moment.strftime("%d %b %Y, %H:%M:%S") if moment else "—"


def day_start(text: str | None, field: str) -> datetime | None:
    """A YYYY-MM-DD filter as the start of that day, local time; InvalidInput naming the field."""
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").astimezone()
    except ValueError:
        raise InvalidInput(field, "must be a date like 2026-12-03") from None


def range_of(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """The store's range from two dates: `to` counts its whole day."""
    end = day_start(until, "to")
    return day_start(since, "from"), end + timedelta(days=1) if end else None


def store_filters(values: dict[str, str | None]) -> dict[str, Any]:
    """The store's keyword arguments for the form's (or the CSV address's) values."""
    since, until = range_of(values.get("from"), values.get("to"))
    return {"user_id": values.get("user") or None, "patient_id": (values.get("patient") or "").strip() or None,
            "class_name": values.get("class") or None, "action": values.get("action") or None,
            "outcome": values.get("outcome") or None, "since": since, "until": until}


def who_text(row: AuditRow) -> str:
    if row.username:
        return row.username
    return "command line" if row.user_id == "cli" else (row.user_id or "nobody signed in")


def lead_session_or_404(session: auth.PageSession) -> None:
    if not session.permissions().is_lead:
        raise HTTPException(status_code=404, detail="Not found")  # as if it did not exist


class AuditView:
    def __init__(self, session: auth.PageSession, patient: str | None):
        self.session = session
        self.store = session.store
        self.page: AuditPage | None = None
        self.shown: dict[str, str | None] = {}  # the filters of the rows on screen (the CSV's)
        self.initial_patient = patient

    async def build(self) -> None:
        ui.add_css(CSS)
        page_title("Audit log")
        users = {u.id: u.username for u in await self.store.list_users(principal=self.session.principal)}
        self.user_options = {"": "Anyone", **dict(sorted(users.items(), key=lambda kv: kv[1].casefold()))}
        with ui.tabs().classes("w-full").props('align="left"') as tabs:
            log_tab = ui.tab("Log", icon="fact_check").mark("tab-log")
            report_tab = ui.tab("Access report", icon="person_search").mark("tab-report")
        with ui.tab_panels(tabs, value=log_tab).classes("w-full bg-transparent"):
            with ui.tab_panel(log_tab).classes("p-0 gap-4"):
                self.build_log()
            with ui.tab_panel(report_tab).classes("p-0 gap-4"):
                self.build_report()
        await self.show()

    # -- the log ----------------------------------------------------------------------------------
    def build_log(self) -> None:
        with section("Filters", "filter_alt"), ui.row().classes("w-full items-start gap-2"):
            self.fields: dict[str, Any] = {
                "user": ui.select(self.user_options, value="", label="User").props("outlined")
                .style("min-width: 170px").mark("filter-user"),
                "patient": ui.input("Patient (objectId)", value=self.initial_patient or "").props("outlined")
                .style("width: 170px").mark("filter-patient"),
                "class": ui.select({"": "Any", **CLASSES}, value="", label="Record").props("outlined")
                .style("min-width: 150px").mark("filter-class"),
                "action": ui.select({"": "Any", **{a: ACTION_LABELS[a] for a in ACTIONS}}, value="", label="Action")
                .props("outlined").style("min-width: 160px").mark("filter-action"),
                "outcome": ui.select({"": "Any", **{o: o.replace("_", " ") for o in OUTCOMES}}, value="",
                                     label="Outcome").props("outlined").style("min-width: 140px")
                .mark("filter-outcome"),
                "from": ui.input("From").props("outlined type=date stack-label").mark("filter-from"),
                "to": ui.input("To").props("outlined type=date stack-label").mark("filter-to"),
            }
            for field in self.fields.values():
                field.on_value_change(lambda e: setattr(e.sender, "error", None))
            self.fields["patient"].on("keydown.enter", self.show)
            ui.button("Show", icon="search", on_click=self.show).props("unelevated color=primary") \
                .style("height:56px").mark("audit-show")
        self.results = section("Who did what", "fact_check").mark("audit-results")
        with self.results:
            with ui.row().classes("w-full items-center gap-2"):
                self.summary = ui.label("").classes("ot-muted")
                ui.space()
                self.csv_link = ui.link("Download CSV", target="/audit/export.csv").props("download") \
                    .classes("ot-link-button").mark("audit-csv")
            self.table = ui.column().classes("w-full gap-0")
            with ui.row().classes("w-full justify-end gap-2"):
                self.newer_button = ui.button("Previous", icon="chevron_left", on_click=self.newer) \
                    .props("outline").mark("audit-previous")
                self.older_button = ui.button("Next page", icon="chevron_right", on_click=self.older) \
                    .props("outline").mark("audit-next")

    def values(self) -> dict[str, str | None]:
        return {name: (field.value or None) for name, field in self.fields.items()}

    async def show(self) -> None:
        await self.load(self.values())

    async def older(self) -> None:
        if self.page and self.page.older:
            await self.load(self.shown, after=self.page.older)

    async def newer(self) -> None:
        if self.page and self.page.newer:
            await self.load(self.shown, before=self.page.newer)

    async def load(self, values: dict[str, str | None], *, after: AuditCursor | None = None,
                   before: AuditCursor | None = None) -> None:
        try:
            page = await self.store.audit_page(principal=self.session.principal, after=after, before=before,
                                               limit=PAGE_SIZE, **store_filters(values))
        except StoreError as exc:
            refused_at(exc, self.fields)  # the store names the filters as the form does
            return
        self.page, self.shown = page, dict(values)
        self.csv_link.props["href"] = f"/audit/export.csv?{urlencode({k: v for k, v in values.items() if v})}"
        self.csv_link.update()
        self.render(page)

    def render(self, page: AuditPage) -> None:
        self.table.clear()
        with self.table:
            with ui.element("div").classes("au-row au-head"):
                # The same column classes as the rows: a narrow screen hides a column's head with it.
                for title, cls in (("When", ""), ("Who", ""), ("Did", ""), ("Record", ""), ("Patient", "c-patient"),
                                   ("Outcome", ""), ("Detail", "c-detail")):
                    ui.label(title).classes(cls)
            if not page.rows:
                ui.label("No audit rows match these filters.").classes("ot-empty").mark("audit-empty")
            for row in page.rows:
                with ui.element("div").classes("au-row").mark("audit-row"):
                    ui.label(when_text(row.at))
                    ui.label(who_text(row)).classes("font-medium")
                    ui.label(ROW_ACTIONS.get(row.action, row.action))
                    ui.label(f"{CLASSES.get(row.class_name, row.class_name)} {row.object_id or ''}".strip())
                    with ui.element("div").classes("c-patient"):
                        if row.patient_ref:
                            ui.link(row.patient_ref, f"/patient/{row.patient_ref}").classes("au-mono")
                    ui.badge(row.outcome.replace("_", " "), color=OUTCOME_COLOURS.get(row.outcome, "grey")) \
                        .props("outline").classes("justify-self-start")
                    ui.label(row.detail or "").classes("c-detail ot-muted")
        self.summary.text = (f"{len(page.rows)} rows, newest first" if page.rows else "")
        self.newer_button.set_enabled(page.newer is not None)
        self.older_button.set_enabled(page.older is not None)

    # -- the access report ------------------------------------------------------------------------
    def build_report(self) -> None:
        with section("Which patients a user opened", "person_search"), ui.row().classes("w-full items-start gap-2"):
            options = {k: v for k, v in self.user_options.items() if k}
            self.report_user = ui.select(options, label="User").props("outlined").style("min-width: 190px") \
                .mark("report-user")
            self.report_from = ui.input("From").props("outlined type=date stack-label").mark("report-from")
            self.report_to = ui.input("To").props("outlined type=date stack-label").mark("report-to")
            for field in (self.report_user, self.report_from, self.report_to):
                field.on_value_change(lambda e: setattr(e.sender, "error", None))
            ui.button("Show report", icon="search", on_click=self.report).props("unelevated color=primary") \
                .style("height:56px").mark("report-show")
        self.report_card = section("Patients opened", "folder_shared").mark("report-results")
        with self.report_card:
            self.report_table = ui.column().classes("w-full gap-0")
            with self.report_table:
                ui.label("Choose a user and a range.").classes("ot-empty")

    async def report(self) -> None:
        if not self.report_user.value:
            self.report_user.error = "Choose a user"
            return
        fields = {"user": self.report_user, "from": self.report_from, "to": self.report_to}
        try:
            since, until = range_of(self.report_from.value, self.report_to.value)
            found = await self.store.access_report(principal=self.session.principal, user_id=self.report_user.value,
                                                   since=since, until=until)
        except StoreError as exc:
            refused_at(exc, fields)
            return
        self.render_report(found)

    def render_report(self, found: list[AccessReportRow]) -> None:
        self.report_table.clear()
        with self.report_table:
            with ui.element("div").classes("au-rep au-head"):
                for title in ("Patient", "Views", "First", "Last"):
                    ui.label(title)
            if not found:
                ui.label("This user opened no patient in this range.").classes("ot-empty").mark("report-empty")
            for row in found:
                with ui.element("div").classes("au-rep").mark("report-row"):
                    ui.link(row.patient_ref, f"/patient/{row.patient_ref}").classes("au-mono")
                    ui.label(str(row.reads))
                    ui.label(when_text(row.first_at))
                    ui.label(when_text(row.last_at))


@router.page("/audit", title="Audit · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def audit_page(request: Request, patient: str | None = None) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    try:
        lead_session_or_404(session)
    except NotAuthenticated:
        return auth.to_login(request)
    with frame(session, "audit"):
        await AuditView(session, patient).build()
    return None


@router.get("/audit/export.csv", include_in_schema=False)
async def audit_export(request: Request) -> Any:
    """The filtered rows as CSV, streamed as the store reads them (bounded by the store); the same
    filters as the page's form, by the same names."""
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    values = {name: request.query_params.get(name) for name in ("user", "patient", "class", "action", "outcome",
                                                                "from", "to")}
    try:
        chunks = await session.store.audit_csv(principal=session.principal, **store_filters(values))
    except NotAuthenticated:
        return auth.to_login(request)
    except NotFound:
        raise HTTPException(status_code=404, detail="Not found") from None
    except InvalidInput as exc:
        return PlainTextResponse(exc.message, status_code=400)
    name = f"audit-{datetime.now().astimezone():%Y%m%d-%H%M}.csv"
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store"})
