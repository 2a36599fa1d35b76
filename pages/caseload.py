"""The caseload, the home page: one row per visible patient, each row refreshed on its own."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.errors import NotAuthenticated
from dashboard.hub import DeliveryKind, class_topic
from dashboard.store import CaseloadRow, DischargedRow
from pages import auth, live
from pages.patient_admission import AdmitDialog, therapist_options
from pages.display import date_text, ordered_scores, score_chip
from pages.frame import PAGE_BUILD_TIMEOUT, frame, page_title, status_badge

router = APIRouter()
PAGE_SIZE = 25
WATCHED = ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "PatientActivity")

CSS = """
.cl-grid { display: grid; grid-template-columns: minmax(200px, 1.6fr) 170px minmax(220px, 2fr) 120px 100px 100px 28px;
  align-items: center; gap: 12px; padding: 12px 16px; }
.cl-head { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--ot-muted);
  font-weight: 600; border-bottom: 1px solid var(--ot-line); padding-top: 4px; padding-bottom: 8px; }
.cl-row { border-bottom: 1px solid var(--ot-line); color: inherit; text-decoration: none; min-height: 64px;
  transition: background .15s; }
.cl-row:hover { background: #f7fafc; }
.cl-row:last-child { border-bottom: 0; }
.cl-name { font-weight: 600; font-size: 1rem; }
.cl-sub { font-size: .8rem; color: var(--ot-muted); }
.cl-num { font-variant-numeric: tabular-nums; }
.score-chip { background: #f1f5f9; border-radius: 8px; padding: 3px 8px; font-size: .85rem; }
.score-chip .score-name { color: var(--ot-muted); font-size: .75rem; }
.score-chip .score-value { font-weight: 650; font-variant-numeric: tabular-nums; }
.cl-pill { display: inline-flex; align-items: center; gap: 4px; border-radius: 999px; padding: 2px 10px;
  font-weight: 600; font-size: .85rem; }
.cl-pill.warn { background: #fff4e5; color: #9a5b00; }
.cl-pill.info { background: #e6f4f1; color: #0b5563; }
.cl-pill.none { color: #9aa5b1; }
@media (max-width: 1100px) {
  .cl-grid { grid-template-columns: minmax(130px, 1.2fr) 138px minmax(150px, 1.5fr) 50px 78px 22px; gap: 8px; }
  .cl-grid > .c-last { display: none; }
  .cl-head > .c-follow, .cl-head > .c-equip { visibility: hidden; }
}
"""


class CaseloadView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.catalogue = self.store.catalogue
        self.rows: dict[str, CaseloadRow] = {}
        self.search = ""
        self.status = ""
        self.therapist_id = ""
        self.sort = "name"
        self.page = 1
        self.shown: dict[str, ui.element] = {}
        self.statuses = list(self.catalogue.vocabulary["mobilityStatus"])
        # -- admission and discharge: "current" lists the admitted patients, "discharged" the others
        self.showing = "current"
        self.discharged: list[DischargedRow] = []

    # -- data -------------------------------------------------------------------------------------
    async def load(self) -> None:
        rows = await self.store.caseload(principal=self.session.principal)
        self.rows = {r.object_id: r for r in rows}

    def matches(self, row: CaseloadRow) -> bool:
        text = self.search.strip().lower()
        if text and text not in row.display_name.lower() and text not in (row.patient_number or "").lower():
            return False
        if self.status and row.mobility_status != self.status:
            return False
        return not (self.therapist_id and row.primary_therapist_id != self.therapist_id)

    def ordered(self) -> list[CaseloadRow]:
        rows = [r for r in self.rows.values() if self.matches(r)]
        keys = {
            "name": lambda r: (r.display_name.lower(), r.object_id),
            "status": lambda r: (-self.statuses.index(r.mobility_status) if r.mobility_status in self.statuses else 0,
                                 r.display_name.lower()),
            "follow_ups": lambda r: (-r.open_follow_ups, r.display_name.lower()),
            "last_session": lambda r: (-(r.last_session.timestamp() if r.last_session else 0), r.display_name.lower()),
            "equipment": lambda r: (-r.equipment_out, r.display_name.lower()),
        }
        return sorted(rows, key=keys.get(self.sort, keys["name"]))

    # -- view -------------------------------------------------------------------------------------
    async def build(self) -> None:
        await self.load()
        ui.add_css(CSS)
        with ui.row().classes("w-full items-end justify-between gap-2"):
            with ui.column().classes("gap-0"):
                page_title("Caseload")
                self.count_label = ui.label().classes("ot-muted")
            # -- export: the rows below as shown (filters, search, sort) as CSV (pages/downloads.py)
            ui.space()
            ui.button("Download CSV", icon="download", on_click=self.download_csv) \
                .props("outline color=primary").mark("caseload-csv")
            # -- admission: for those the store lets add patients
            if self.session.permissions().can_add_patient:
                ui.button("Admit patient", icon="person_add", on_click=self.open_admit) \
                    .props("unelevated color=primary data-testid=admit-patient").mark("admit-patient")
        with ui.row().classes("w-full items-center gap-3 ot-card").style("padding: 12px 16px"):
            ui.input(placeholder="Search name or identifier", on_change=lambda e: self.set("search", e.value)) \
                .props('outlined dense clearable debounce="250" aria-label="Search"').classes("grow") \
                .style("min-width: 220px").mark("search")
            status_options = {"": "All statuses"} | {
                k: t.label for k, t in self.catalogue.vocabulary["mobilityStatus"].items()}
            ui.select(status_options, value="", label="Status", on_change=lambda e: self.set("status", e.value)) \
                .props("outlined dense options-dense").style("min-width: 180px").mark("status-filter")
            if self.session.permissions().is_lead:  # every patient: filtering by therapist helps
                therapists = {"": "All therapists"} | {r.primary_therapist_id: r.primary_therapist
                                                       for r in sorted(self.rows.values(), key=lambda r: r.primary_therapist)}
                ui.select(therapists, value="", label="Therapist",
                          on_change=lambda e: self.set("therapist_id", e.value)) \
                    .props("outlined dense").style("min-width: 170px").mark("therapist-filter")
            ui.select({"name": "Name", "status": "Most dependent first", "follow_ups": "Open follow-ups",
                       "last_session": "Last session", "equipment": "Equipment out"},
                      value="name", label="Sort by", on_change=lambda e: self.set("sort", e.value)) \
                .props("outlined dense").style("min-width: 190px").mark("sort")
            # -- discharge: the discharged patients stay readable here
            ui.select({"current": "Current patients", "discharged": "Discharged"}, value="current", label="Showing",
                      on_change=lambda e: self.show_admission(e.value)) \
                .props("outlined dense data-testid=admission-filter").style("min-width: 180px").mark("admission-filter")
        with ui.column().classes("ot-card gap-0").style("padding: 0; overflow: hidden"):
            with ui.element("div").classes("cl-grid cl-head w-full"):
                for cls, text in (("c-name", "Patient"), ("c-status", "Mobility"), ("c-scores", "Latest scores"),
                                  ("c-last", "Last session"), ("c-follow", "Follow-ups"),
                                  ("c-equip", "Equipment"), ("c-go", "")):
                    ui.label(text).classes(cls)
            self.list = ui.column().classes("w-full gap-0").mark("caseload-list")
        with ui.row().classes("w-full justify-center"):
            self.pager = ui.pagination(1, 1, direction_links=True, on_change=self.on_page) \
                .props("boundary-numbers max-pages=7 size=lg")
        self.render_list()
        live.watch(self.session, [class_topic(c) for c in WATCHED], self.on_batch)

    def set(self, name: str, value: str | None) -> None:
        setattr(self, name, value or "")
        self.page = 1
        self.render_list()

    def on_page(self, event) -> None:  # noqa: ANN001 - NiceGUI's value change event
        if event.value and event.value != self.page:
            self.page = event.value
            self.render_list()

    # -- admission and discharge -------------------------------------------------------------------
    async def open_admit(self) -> None:
        AdmitDialog(self.session, await therapist_options(self.session, self.session.permissions()))

    async def show_admission(self, value: str | None) -> None:
        self.showing = value or "current"
        self.page = 1
        if self.showing == "discharged":
            self.discharged = await self.store.discharged_patients(principal=self.session.principal)
        self.render_list()

    def render_discharged(self) -> None:
        rows = [r for r in self.discharged if self.matches(r)]  # type: ignore[arg-type]
        self.count_label.text = f"{len(rows)} discharged patient{'s' if len(rows) != 1 else ''}"
        self.pager.set_visibility(False)
        self.list.clear()
        self.shown = {}
        with self.list:
            if not rows:
                ui.label("No discharged patients match these filters." if self.discharged else
                         "No discharged patients.").classes("ot-empty w-full").mark("caseload-empty")
            for row in rows:
                with ui.link(target=f"/patient/{row.object_id}").classes("cl-grid cl-row w-full") \
                        .mark(f"discharged-{row.object_id}"):
                    with ui.column().classes("c-name gap-0"):
                        ui.label(row.display_name).classes("cl-name")
                        ui.label(" · ".join(p for p in (row.patient_number, row.primary_therapist) if p)) \
                            .classes("cl-sub")
                    with ui.element("div").classes("c-status"):
                        status_badge(self.catalogue, row.mobility_status)
                    ui.label(row.reason or "").classes("c-scores cl-sub")
                    ui.label(row.discharged_on.strftime("%d %b %Y") if row.discharged_on else "—") \
                        .classes("c-last cl-num")

    def render_list(self) -> None:
        if self.showing == "discharged":
            self.render_discharged()
            return
        rows = self.ordered()
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.page = min(self.page, pages)
        visible = rows[(self.page - 1) * PAGE_SIZE: self.page * PAGE_SIZE]
        total = len(self.rows)
        self.count_label.text = (f"{len(rows)} of {total} patients" if len(rows) != total
                                 else f"{total} patient{'s' if total != 1 else ''}")
        self.pager.max = pages
        self.pager.value = self.page
        self.pager.set_visibility(pages > 1)
        self.list.clear()
        self.shown = {}
        with self.list:
            if not visible:
                message = ("No patients match these filters." if self.rows else
                           "No patients yet. Patients appear here when you are their therapist "
                           "or on their care team.")
                ui.label(message).classes("ot-empty w-full").mark("caseload-empty")
            for row in visible:
                self.shown[row.object_id] = self.render_row(row)

    def render_row(self, row: CaseloadRow) -> ui.link:
        link = ui.link(target=f"/patient/{row.object_id}").classes("cl-grid cl-row w-full") \
            .mark(f"row-{row.object_id}").props(f'data-patient="{row.object_id}"')
        with link:
            self.fill_row(row)
        return link

    def fill_row(self, row: CaseloadRow) -> None:
        with ui.column().classes("c-name gap-0"):
            ui.label(row.display_name).classes("cl-name")
            parts = [p for p in (row.patient_number, row.primary_therapist, row.bed) if p]
            ui.label(" · ".join(parts)).classes("cl-sub")
        with ui.element("div").classes("c-status"):
            status_badge(self.catalogue, row.mobility_status)
        with ui.row().classes("c-scores gap-1"):
            scores = ordered_scores(self.catalogue, row.latest)
            for score in scores:
                score_chip(self.catalogue, score)
            if not scores:
                ui.label("No scores yet").classes("cl-sub")
        ui.label(date_text(row.last_session)).classes("c-last cl-num")
        with ui.element("div").classes("c-follow"):
            if row.open_follow_ups:
                with ui.element("span").classes("cl-pill warn"):
                    ui.icon("flag", size="15px")
                    ui.label(str(row.open_follow_ups))
            else:
                ui.label("—").classes("cl-pill none")
        with ui.element("div").classes("c-equip"):
            if row.equipment_out:
                with ui.element("span").classes("cl-pill info"):
                    ui.icon("medical_services", size="15px")
                    ui.label(f"{row.equipment_out} out")
            else:
                ui.label("—").classes("cl-pill none")
        ui.icon("chevron_right", size="22px").classes("c-go ot-muted")

    async def download_csv(self) -> None:
        from pages.downloads import send_caseload_csv  # pages.downloads builds on this view: imported late
        await send_caseload_csv(self)

    # -- live -------------------------------------------------------------------------------------
    async def on_batch(self, batch: live.Batch) -> None:
        if any(d.kind == DeliveryKind.RESYNC for d in batch):
            await self.load()
            if self.showing == "discharged":  # -- discharge
                self.discharged = await self.store.discharged_patients(principal=self.session.principal,
                                                                       live_refresh=True)
            self.render_list()
            return
        gone = {d.patient_id for d in batch if d.kind == DeliveryKind.ACCESS_ENDED and d.patient_id}
        changed = {d.patient_id for d in batch if d.kind != DeliveryKind.ACCESS_ENDED and d.patient_id} - gone
        if any(d.kind == DeliveryKind.ACCESS_ENDED and not d.patient_id for d in batch) and not self.signed_in():
            ui.navigate.to("/login")  # signed out or deactivated elsewhere
            return
        relayout = False
        for patient_id in gone:
            relayout |= self.rows.pop(patient_id, None) is not None
        for patient_id in changed:
            found = await self.store.caseload(principal=self.session.principal, patient_id=patient_id,
                                              live_refresh=True)
            old = self.rows.get(patient_id)
            if not found:
                relayout |= self.rows.pop(patient_id, None) is not None
                continue
            row = found[0]
            self.rows[patient_id] = row
            element = self.shown.get(patient_id)
            if element is not None and self.matches(row) and self.sort == "name" \
                    and old is not None and old.display_name == row.display_name:
                self.refill(element, row)
            elif element is not None or (self.matches(row) and (old is None or self.sort != "name")):
                relayout = True
        if self.showing == "discharged" and (gone or any(d.class_name == "Patient" for d in batch)):
            # -- discharge: a discharge elsewhere adds the patient to the open Discharged list
            self.discharged = await self.store.discharged_patients(principal=self.session.principal,
                                                                   live_refresh=True)
            relayout = True
        if relayout:
            self.render_list()

    def signed_in(self) -> bool:
        try:
            self.session.permissions()
        except NotAuthenticated:
            return False
        return True

    def refill(self, element: ui.element, row: CaseloadRow) -> None:
        """Rebuilds one row in place: only this row's elements go over the wire."""
        element.clear()
        with element:
            self.fill_row(row)
        element.classes(remove="ot-flash")
        element.classes(add="ot-flash")


@router.page("/", title="Caseload · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def caseload_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    view = CaseloadView(session)
    with frame(session, "caseload"):
        await view.build()
    return None
