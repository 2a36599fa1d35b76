"""The ward screen: read-only, large type, for a TV nobody touches.

It never shows note text, dates of birth or identifiers; initials unless a lead turned names on for
this account. It keeps its session alive, and after a server restart the frame's connection script
reloads it once the server answers again.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.errors import NotAuthenticated
from dashboard.hub import DeliveryKind, class_topic
from dashboard.serialize import initials
from dashboard.store import CaseloadRow
from pages import auth, live
from pages.display import ordered_scores, score_chip
from pages.frame import PAGE_BUILD_TIMEOUT, frame, status_badge

router = APIRouter()
PAGE_SIZE = 12
ROTATE_SECONDS = 20
KEEPALIVE_SECONDS = 120

CSS = """
.ot-main.ward-main { max-width: none; padding: 20px 32px; }
.ward-title { font-size: 2.2rem; font-weight: 750; letter-spacing: -.01em; }
.ward-clock { font-size: 2.2rem; font-weight: 650; font-variant-numeric: tabular-nums; color: var(--ot-brand); }
.ward-grid { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 18px; width: 100%; }
@media (max-width: 1300px) { .ward-grid { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.ward-card { background: #fff; border-radius: 18px; border: 1px solid var(--ot-line); padding: 20px 22px;
  display: flex; flex-direction: column; gap: 14px; min-height: 230px; box-shadow: 0 2px 6px rgba(16,42,67,.06); }
.ward-name { font-size: 2.3rem; font-weight: 800; letter-spacing: .02em; line-height: 1; }
.ward-card .ot-status { font-size: 1.3rem; padding: 8px 14px; }
.ward-card .score-chip { font-size: 1.25rem; padding: 6px 12px; }
.ward-card .score-chip .score-name { font-size: 1rem; }
.ward-follow { font-size: 1.2rem; font-weight: 700; color: #9a5b00; background: #fff4e5; border-radius: 999px;
  padding: 4px 14px; }
.ward-quiet { font-size: 1.1rem; color: #9aa5b1; }
.ot-offline-banner { background: #fdecea; color: #8a1c1c; border-radius: 12px; padding: 10px 16px;
  font-size: 1.2rem; align-items: center; gap: 10px; width: 100%; }
"""


class WardView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.rows: dict[str, CaseloadRow] = {}
        self.page = 0
        self.cards: dict[str, ui.element] = {}
        self.names = False  # full names: asked of the store with every load

    def label(self, row: CaseloadRow) -> str:
        # A viewer's rows already carry what it may show (initials unless a lead turned names on);
        # anyone else's carry full names, which a wall screen shows as initials all the same.
        return row.display_name if self.names else initials(row.display_name)

    def ask(self) -> None:
        try:
            perms = self.session.permissions()
        except NotAuthenticated:
            self.names = False  # the session ended: the frame sends the screen to sign in
            return
        self.names = perms.is_viewer or perms.full_names

    async def load(self) -> None:
        rows = await self.store.caseload(principal=self.session.principal)
        self.rows = {r.object_id: r for r in rows}
        self.ask()

    async def build(self) -> None:
        await self.load()
        ui.add_css(CSS)
        with ui.row().classes("ot-offline-banner"):
            ui.icon("wifi_off", size="26px")
            ui.label("Connection lost — reconnecting. The screen will refresh by itself.")
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Ward overview").classes("ward-title")
            self.pager_label = ui.label().classes("ot-muted text-xl")
            self.clock = ui.label().classes("ward-clock")
        self.grid = ui.element("div").classes("ward-grid").mark("ward-grid")
        self.render()
        self.tick()
        ui.timer(1, self.tick)
        ui.timer(ROTATE_SECONDS, self.rotate)
        ui.timer(KEEPALIVE_SECONDS, self.keep_alive)
        # PatientActivity carries follow-up counts without note content, so viewers get it too.
        topics = ["Patient", "MobilityScore", "EquipmentLog", "PatientActivity"]
        live.watch(self.session, [class_topic(c) for c in topics], self.on_batch)

    def tick(self) -> None:
        self.clock.text = datetime.now().strftime("%H:%M")

    async def keep_alive(self) -> None:
        """A wall screen has no one to sign it in again: keep its session from idling out."""
        if await auth.resolve(self.session.token) is None:
            ui.navigate.to("/login?next=/ward")

    def rotate(self) -> None:
        if len(self.rows) > PAGE_SIZE:
            self.page += 1
            self.render()

    def ordered(self) -> list[CaseloadRow]:
        return sorted(self.rows.values(), key=lambda r: (self.label(r).lower(), r.object_id))

    def render(self) -> None:
        rows = self.ordered()
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.page %= pages
        self.pager_label.text = f"Page {self.page + 1} of {pages}" if pages > 1 else f"{len(rows)} patients"
        self.grid.clear()
        self.cards = {}
        with self.grid:
            for row in rows[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]:
                card = ui.element("div").classes("ward-card").mark(f"ward-{row.object_id}").props(f"data-patient={row.object_id}")
                self.cards[row.object_id] = card
                with card:
                    self.fill(row)
            if not rows:
                ui.label("No patients on this screen's care teams yet.").classes("ward-quiet")

    def fill(self, row: CaseloadRow) -> None:
        catalogue = self.store.catalogue
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(self.label(row)).classes("ward-name")
            follow = row.open_follow_ups
            if follow:
                with ui.row().classes("ward-follow items-center gap-1"):
                    ui.icon("flag", size="22px")
                    ui.label(f"{follow} follow-up{'s' if follow != 1 else ''}")
        with ui.element("div"):
            status_badge(catalogue, row.mobility_status)
        with ui.row().classes("gap-2"):
            scores = ordered_scores(catalogue, row.latest)
            for score in scores:
                score_chip(catalogue, score, large=True)
            if not scores:
                ui.label("No scores yet").classes("ward-quiet")

    async def on_batch(self, batch: live.Batch) -> None:
        names = self.names
        self.ask()  # a lead may have turned names on or off, or changed the role, since
        reload = (DeliveryKind.RESYNC, DeliveryKind.ACCESS_GRANTED, DeliveryKind.ACCESS_ENDED)
        if self.names != names or any(d.kind in reload for d in batch):
            await self.load()
            self.render()
            return
        for patient_id in {d.patient_id for d in batch if d.patient_id}:
            found = await self.store.caseload(principal=self.session.principal, patient_id=patient_id,
                                              live_refresh=True)
            if not found:
                self.rows.pop(patient_id, None)
                self.render()
                continue
            self.rows[patient_id] = found[0]
            card = self.cards.get(patient_id)
            if card is None:
                self.render()
            else:
                card.clear()
                with card:
                    self.fill(found[0])


@router.page("/ward", title="Ward · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def ward_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    with frame(session, "ward", main_classes="ward-main"):
        await WardView(session).build()
    return None
