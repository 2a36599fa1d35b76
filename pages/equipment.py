"""The equipment board: everything checked out across the user's patients, and recent returns."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.hub import class_topic
from dashboard.store import BoardItem
from pages import auth, live
from pages.display import ago, datetime_text
from pages.frame import PAGE_BUILD_TIMEOUT, frame, page_title, section

router = APIRouter()
PAGE_SIZE = 30

CSS = """
.eq-grid { display: grid; grid-template-columns: minmax(160px, 1.4fr) minmax(120px, 1fr) 140px 150px 120px;
  gap: 12px; align-items: center; padding: 10px 6px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.eq-head { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--ot-muted); font-weight: 600; }
.eq-grid .q-badge { justify-self: start; width: auto; }
.eq-long { color: #9a3412; font-weight: 650; }
.eq-stat { font-size: 2rem; font-weight: 700; line-height: 1; }
@media (max-width: 1023px) { .eq-grid { grid-template-columns: minmax(140px, 1.3fr) minmax(100px, 1fr) 120px 110px; }
  .eq-grid > .c-since { display: none; } }
"""


class BoardView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.out: list[BoardItem] = []
        self.returned: list[BoardItem] = []
        self.page = 1
        self.links = True  # to each patient's page; a ward screen (a viewer) has none to open

    async def load(self) -> None:
        self.out, self.returned = await self.store.equipment_board(principal=self.session.principal)
        self.links = not self.session.permissions().is_viewer  # asked with every load: the role is live

    async def build(self) -> None:
        await self.load()
        ui.add_css(CSS)
        with ui.row().classes("w-full items-end justify-between"):
            with ui.column().classes("gap-0"):
                page_title("Equipment board")
                ui.label("Checked out across your patients, updated live").classes("ot-muted")
        self.stats = ui.row().classes("w-full gap-4")
        self.out_card = section("Checked out now", "output").mark("board-out")
        with self.out_card:  # a push rebuilds the rows, never the pager (it may have focus)
            self.out_rows = ui.column().classes("w-full gap-3")
            with ui.row().classes("w-full justify-center"):
                self.pager = ui.pagination(1, 1, direction_links=True, on_change=lambda e: self.go(e.value)) \
                    .props("size=lg")
        self.back_card = section("Returned in the last 24 hours", "input").mark("board-returned")
        self.render()
        live.watch(self.session, [class_topic("EquipmentLog"), class_topic("Patient")], self.on_batch)
        ui.timer(60, self.render)  # durations move on; the data itself arrives by push

    def _clear(self, card: ui.column) -> None:
        for child in list(card.default_slot.children)[1:]:
            card.remove(child)

    def render(self) -> None:
        now = datetime.now(timezone.utc)
        statuses = self.store.catalogue.vocabulary["equipmentStatus"]
        long_out = sum(1 for i in self.out if i.log.checked_out_at and (now - i.log.checked_out_at).days >= 7)
        self.stats.clear()
        with self.stats:
            for label, value, icon in (("Out now", len(self.out), "output"),
                                       ("Out 7 days or more", long_out, "schedule"),
                                       ("Returned today", len(self.returned), "input")):
                with ui.row().classes("ot-card items-center gap-3 no-wrap").style("width:auto; flex:1; min-width:200px"):
                    ui.icon(icon, size="30px").classes("text-primary")
                    with ui.column().classes("gap-0"):
                        ui.label(str(value)).classes("eq-stat").mark(f"stat-{icon}")
                        ui.label(label).classes("ot-muted text-sm")
        self.out_rows.clear()
        pages = max(1, (len(self.out) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.page = min(self.page, pages)
        self.pager.max = pages
        self.pager.value = self.page
        self.pager.set_visibility(pages > 1)
        with self.out_rows:
            with ui.element("div").classes("eq-grid eq-head"):
                for cls, text in (("", "Equipment"), ("", "Patient"), ("", "Status"), ("c-since", "Out since"),
                                  ("", "Out for")):
                    ui.label(text).classes(cls)
            for item in self.out[(self.page - 1) * PAGE_SIZE: self.page * PAGE_SIZE]:
                self.row(item, statuses, now)
            if not self.out:
                ui.label("Nothing is checked out.").classes("ot-empty w-full")
        self._clear(self.back_card)
        with self.back_card:
            for item in self.returned[:50]:
                with ui.element("div").classes("eq-grid"):
                    ui.label(item.log.equipment_name).classes("font-medium")
                    self.patient_cell(item)
                    ui.label("Returned").classes("text-sm ot-muted")
                    ui.label(datetime_text(item.log.returned_at)).classes("text-sm c-since")
                    ui.label(f"{ago(item.log.returned_at, now)} ago").classes("text-sm ot-muted")
            if not self.returned:
                ui.label("No returns in the last 24 hours.").classes("ot-empty w-full")

    def go(self, page: int | None) -> None:
        if page and page != self.page:
            self.page = page
            self.render()

    def patient_cell(self, item: BoardItem) -> None:
        if not self.links:
            ui.label(item.patient_label)
        else:
            ui.link(item.patient_label, f"/patient/{item.patient_object_id}").classes("text-primary font-medium")

    def row(self, item: BoardItem, statuses: dict, now: datetime) -> None:
        log = item.log
        since = log.checked_out_at
        with ui.element("div").classes("eq-grid").mark(f"board-{log.id}"):
            with ui.column().classes("gap-0"):
                ui.label(log.equipment_name).classes("font-medium")
                if log.serial_number:
                    ui.label(log.serial_number).classes("text-xs ot-muted")
            self.patient_cell(item)
            term = statuses.get(log.status)
            ui.badge(term.label if term else log.status,
                     color="teal-1" if log.status == "checked_out" else "orange-1",
                     text_color="teal-10" if log.status == "checked_out" else "deep-orange-10").props("rounded") \
                .classes("self-start")
            ui.label(datetime_text(since)).classes("text-sm c-since")
            long = since is not None and (now - since).days >= 7
            ui.label(ago(since, now)).classes("text-sm " + ("eq-long" if long else ""))

    async def on_batch(self, batch: live.Batch) -> None:
        await self.load()
        self.render()


@router.page("/equipment", title="Equipment · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def equipment_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    with frame(session, "equipment"):
        await BoardView(session).build()
    return None
