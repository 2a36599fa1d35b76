"""The ward board: a kiosk for a shared TV, read from across the room.

No navigation and no sign-out on screen (a lead signs the account out from admin). Large type that
scales with the screen (the sizes below are CSS pixels on a 1920-wide screen, twice that on a 3840
one). Cards ordered by bed, a page at a time: as many as the screen holds, rotating, never a scroll
bar. Coded data only: never note text, a status reason, a date of birth, an identifier or a staff
username; initials unless a lead turned names on for this account. It keeps its session alive, and
after a server restart or a network drop the frame's connection script brings it back; the header
says when it last heard from the server.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui
from nicegui.elements.mixins.text_element import TextElement

from dashboard.catalogue import Catalogue
from dashboard.errors import NotAuthenticated
from dashboard.hub import DeliveryKind, class_topic
from dashboard.serialize import initials
from dashboard.store import LatestScore, WardRow, ward_order
from pages import auth, live
from pages.display import TREND_COLOURS, ordered_scores, short_name, value_text
from pages.frame import PAGE_BUILD_TIMEOUT, frame, status_badge

router = APIRouter()
ROTATE_SECONDS = 20
KEEPALIVE_SECONDS = 120
HEARD_SECONDS = 10  # how often the header's "last heard" moves while the connection is up
# The board's grid, in px at 1920 wide (`--wu` scales them): a card at least this size, and what
# the title row, the legend and the paddings take.
CARD_WIDTH, CARD_HEIGHT, CHROME_HEIGHT, SIDE_PADDING = 560, 280, 196, 48
MAX_COLUMNS, MAX_ROWS = 4, 6
MAX_CHIPS = 4  # two lines of two fit the narrowest card; more measures: "+N more"
DEFAULT_SIZE = (1920, 1080)  # until the browser says its size

CSS = """
body.ot-body { --wu: max(1px, calc(100vw / 1920)); overflow: hidden; }
.ot-main.ward-main { max-width: none; height: 100vh; padding: calc(16 * var(--wu)) calc(24 * var(--wu));
  gap: calc(12 * var(--wu)); flex-wrap: nowrap; }
.ward-top { width: 100%; align-items: center; gap: calc(24 * var(--wu)); flex-wrap: nowrap; }
.ward-top h1 { font-size: calc(36 * var(--wu)); font-weight: 750; margin: 0; line-height: 1.1; }
.ward-pager { font-size: calc(26 * var(--wu)); color: var(--ot-muted); font-weight: 600; }
.ward-heard { font-size: calc(22 * var(--wu)); color: var(--ot-muted); display: inline-flex; align-items: center;
  gap: calc(8 * var(--wu)); }
.ward-heard .dot { width: calc(14 * var(--wu)); height: calc(14 * var(--wu)); border-radius: 50%; background: #b7791f; }
body[data-live="live"] .ward-heard .dot { background: #1a7f4b; }
body[data-live="reconnecting"] .ward-heard .dot { background: #c62828; }
.ward-clock { font-size: calc(40 * var(--wu)); font-weight: 700; font-variant-numeric: tabular-nums;
  color: var(--ot-brand); }
.ward-grid { display: grid; width: 100%; flex: 1 1 auto; min-height: 0; gap: calc(16 * var(--wu));
  grid-template-columns: repeat(var(--ward-cols), minmax(0, 1fr));
  grid-template-rows: repeat(var(--ward-rows), minmax(0, 1fr)); }
.ward-grid.ward-measuring { visibility: hidden; }
.ward-card { background: #fff; border-radius: calc(16 * var(--wu)); border: 1px solid #c5d0dc; min-width: 0;
  padding: calc(12 * var(--wu)) calc(20 * var(--wu)); display: flex; flex-direction: column;
  gap: calc(8 * var(--wu)); box-shadow: 0 2px 6px rgba(16,42,67,.06); overflow: hidden; }
.ward-line { display: flex; align-items: center; gap: calc(12 * var(--wu)); min-width: 0; }
.ward-name { font-size: calc(48 * var(--wu)); font-weight: 800; line-height: 1.05; letter-spacing: .01em;
  flex: 1 1 auto; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ward-bed { font-size: calc(30 * var(--wu)); font-weight: 700; color: var(--ot-brand); max-width: 50%;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ward-card .ot-status { font-size: calc(34 * var(--wu)); padding: calc(6 * var(--wu)) calc(16 * var(--wu));
  line-height: 1.15; white-space: nowrap; }
.ward-flag { display: inline-flex; align-items: center; gap: calc(4 * var(--wu)); font-size: calc(28 * var(--wu));
  font-weight: 700; border-radius: 999px; line-height: 1.2; flex: none;
  padding: calc(4 * var(--wu)) calc(12 * var(--wu)) calc(4 * var(--wu)) calc(8 * var(--wu)); }
.ward-flag.falls { padding: calc(4 * var(--wu)) calc(8 * var(--wu)); }
.ward-flag .q-icon { font-size: calc(32 * var(--wu)); }
.ward-flag.falls { background: #fde8e8; color: #8a1c1c; }
.ward-flag.equipment { background: #e6f0ff; color: #123e7a; }
.ward-flag.follow { background: #ffe0b2; color: #7a2e00; }
.ward-chips { display: flex; flex-wrap: wrap; gap: calc(6 * var(--wu)) calc(8 * var(--wu)); }
.ward-chip { display: inline-flex; align-items: baseline; gap: calc(6 * var(--wu)); background: #eef2f6;
  border-radius: calc(12 * var(--wu)); padding: calc(2 * var(--wu)) calc(10 * var(--wu)); white-space: nowrap;
  line-height: 1.2; }
.ward-chip .measure { font-size: calc(22 * var(--wu)); font-weight: 600; color: #334e68; }
.ward-chip .value { font-size: calc(30 * var(--wu)); font-weight: 800; font-variant-numeric: tabular-nums; }
.ward-chip .q-icon { font-size: calc(28 * var(--wu)); align-self: center; }
.ward-chip.more .measure { color: var(--ot-muted); }
.ward-foot { margin-top: auto; display: flex; justify-content: space-between; align-items: center;
  font-size: calc(24 * var(--wu)); line-height: 1.2; color: var(--ot-muted); gap: calc(12 * var(--wu));
  white-space: nowrap; }
.ward-seen { display: inline-flex; align-items: center; gap: calc(6 * var(--wu)); font-weight: 700; }
.ward-seen.yes { color: #1a5e3a; }
.ward-seen .q-icon { font-size: calc(28 * var(--wu)); }
.ward-quiet { font-size: calc(26 * var(--wu)); color: var(--ot-muted); }
.ward-legend { width: 100%; display: flex; flex-wrap: wrap; align-items: center; column-gap: calc(22 * var(--wu));
  row-gap: calc(6 * var(--wu)); font-size: calc(20 * var(--wu)); color: #334e68; }
.ward-legend .item { display: inline-flex; align-items: center; gap: calc(6 * var(--wu)); }
.ward-legend .q-icon { font-size: calc(26 * var(--wu)); }
.ward-legend .ot-status { font-size: calc(18 * var(--wu)); padding: calc(2 * var(--wu)) calc(10 * var(--wu)); }
.ward-main .ot-offline-banner { font-size: calc(24 * var(--wu)); padding: calc(10 * var(--wu)) calc(16 * var(--wu)); }
"""

# Keeps the clock moving while the connection is down (the server's own "last heard" stops), and
# tells the server when the screen changes size.
SCRIPT = """
<script>
(function () {
  function tick() {
    var el = document.getElementById('ward-clock');
    if (el) el.textContent = new Date().toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit'});
  }
  setInterval(tick, 1000);
  var timer = null;
  window.addEventListener('resize', function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      if (window.socket && window.socket.connected) emitEvent('ward_size', {width: innerWidth, height: innerHeight});
    }, 300);
  });
})();
</script>
"""

TREND_ICONS = {"up": "arrow_upward", "down": "arrow_downward", "same": "arrow_forward"}
TREND_WORDS = {"better": "improving", "worse": "worsening", "same": "no change"}


def grid_for(width: float, height: float) -> tuple[int, int]:
    """(columns, rows) of cards a screen of this CSS size holds at the board's type sizes."""
    unit = max(1.0, width / 1920)
    columns = math.floor((width - SIDE_PADDING * unit) / (CARD_WIDTH * unit))
    rows = math.floor((height - CHROME_HEIGHT * unit) / (CARD_HEIGHT * unit))
    return max(1, min(MAX_COLUMNS, columns)), max(1, min(MAX_ROWS, rows))


def falls_risk(catalogue: Catalogue, row_latest: dict[str, LatestScore]) -> list[str]:
    """The measures whose latest value is past the catalogue's falls-risk cut-off."""
    return [short_name(s.score_type) for s in row_latest.values()
            if (m := catalogue.measures.get(s.score_type)) is not None and m.falls_risk(s.value)]


def updated_text(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    local, today = moment.astimezone(), (now or datetime.now(timezone.utc)).astimezone()
    return f"Updated {local:%H:%M}" if local.date() == today.date() else f"Updated {local:%d %b}"


class WardView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.catalogue = session.store.catalogue
        self.rows: dict[str, WardRow] = {}
        self.page = 0
        self.columns, self.grid_rows = grid_for(*DEFAULT_SIZE)
        self.cards: dict[str, ui.element] = {}
        self.names = False  # full names: asked of the store with every load

    @property
    def page_size(self) -> int:
        return self.columns * self.grid_rows

    def label(self, row: WardRow) -> str:
        # A viewer's rows already carry what it may show (initials unless a lead turned names on);
        # anyone else's carry full names, which a wall screen shows as initials all the same.
        name = row.row.display_name
        return name if self.names else initials(name)

    def ask(self) -> None:
        try:
            perms = self.session.permissions()
        except NotAuthenticated:
            self.names = False  # the session ended: the frame sends the screen to sign in
            return
        self.names = perms.is_viewer or perms.full_names

    async def load(self) -> None:
        board = await self.store.ward_board(principal=self.session.principal)
        self.rows = {w.row.object_id: w for w in board}
        self.ask()

    async def build(self) -> None:
        await self.load()
        ui.add_css(CSS)
        ui.add_body_html(SCRIPT)
        with ui.row().classes("ot-offline-banner").props('role="status" aria-live="assertive"'):
            ui.icon("wifi_off", size="26px")
            ui.label("Connection lost — reconnecting. The board will refresh by itself.")
        with ui.row().classes("ward-top"):
            TextElement(tag="h1", text="Ward board").mark("ward-title")
            self.pager = ui.label().classes("ward-pager").mark("ward-pager")
            ui.space()
            with ui.element("div").classes("ward-heard").props('aria-live="off"'):
                ui.element("span").classes("dot")
                self.heard = ui.label().mark("ward-heard")
            self.clock = ui.label(datetime.now().strftime("%H:%M")).classes("ward-clock").props("id=ward-clock")
        # Hidden until the browser has said its size: no flash of a grid made for another screen.
        self.grid = ui.element("div").classes("ward-grid ward-measuring").mark("ward-grid")
        self.legend()
        self.render()
        self.hear()
        ui.timer(HEARD_SECONDS, self.hear)
        ui.timer(ROTATE_SECONDS, self.rotate)
        ui.timer(KEEPALIVE_SECONDS, self.keep_alive)
        ui.on("ward_size", lambda e: self.resize(e.args.get("width"), e.args.get("height")))
        ui.timer(0, self.measure, once=True)
        # PatientActivity carries follow-up counts and the last session without note content, so
        # viewers get it too ("seen today" follows it).
        topics = ["Patient", "MobilityScore", "EquipmentLog", "PatientActivity"]
        live.watch(self.session, [class_topic(c) for c in topics], self.on_batch)

    def legend(self) -> None:
        with ui.element("div").classes("ward-legend").mark("ward-legend").props('role="group" aria-label="Legend"'):
            with ui.element("span").classes("item"):
                ui.label("Arrows point the way a score moved; their colour says whether that is better:")
            for key, icon in (("better", "arrow_upward"), ("worse", "arrow_downward"), ("same", "arrow_forward")):
                with ui.element("span").classes("item"):
                    ui.icon(icon).style(f"color:{TREND_COLOURS[key]}")
                    ui.label(TREND_WORDS[key])
            with ui.element("span").classes("item"):
                ui.icon("warning").style("color:#8a1c1c")
                ui.label(self.falls_rule())
            with ui.element("span").classes("item"):
                ui.icon("medical_services").style("color:#123e7a")
                ui.label("equipment out")
            with ui.element("span").classes("item"):
                ui.icon("flag").style("color:#7a2e00")
                ui.label("follow-up open")
            with ui.element("span").classes("item"):
                ui.icon("check_circle").style("color:#1a5e3a")
                ui.label("seen by therapy today")
            for term in self.catalogue.vocabulary["mobilityStatus"].values():
                status_badge(self.catalogue, term.value)

    def falls_rule(self) -> str:
        rules = []
        for m in self.catalogue.measures.values():
            if m.fall_risk_below is not None:
                rules.append(f"{short_name(m.score_type)} < {m.fall_risk_below:g}")
            if m.fall_risk_above is not None:
                rules.append(f"{short_name(m.score_type)} > {m.fall_risk_above:g}{' s' if m.unit == 's' else ''}")
        return f"falls risk ({', '.join(rules)})" if rules else "falls risk"

    def hear(self) -> None:
        """Runs on the server: while the connection is down the time stays where it was."""
        self.heard.text = f"Last heard from the server {datetime.now():%H:%M:%S}"

    async def measure(self) -> None:
        try:
            size = await ui.run_javascript("[window.innerWidth, window.innerHeight]", timeout=10)
        except TimeoutError:
            size = None  # the page has gone, or is slow: the default grid stays
        if isinstance(size, list) and len(size) == 2:
            self.resize(*size)
        self.grid.classes(remove="ward-measuring")

    def resize(self, width: object, height: object) -> None:
        if not isinstance(width, (int, float)) or not isinstance(height, (int, float)) or width <= 0 or height <= 0:
            return
        grid = grid_for(float(width), float(height))
        if grid != (self.columns, self.grid_rows):
            self.columns, self.grid_rows = grid
            self.render()

    async def keep_alive(self) -> None:
        """A wall screen has no one to sign it in again: keep its session from idling out."""
        if await auth.resolve(self.session.token) is None:
            ui.navigate.to("/login?next=/ward")

    def rotate(self) -> None:
        if len(self.rows) > self.page_size:
            self.page += 1
            self.render()

    def ordered(self) -> list[WardRow]:
        return list(self.rows.values())  # the store's order: by bed, then name

    def render(self) -> None:
        rows = self.ordered()
        size = self.page_size
        pages = max(1, math.ceil(len(rows) / size))
        self.page %= pages
        count = f"{len(rows)} patient{'s' if len(rows) != 1 else ''}"
        self.pager.text = f"{count} · page {self.page + 1} of {pages}" if pages > 1 else count
        # As many rows as the fullest page needs, so a short list still fills the screen.
        used = max(1, min(self.grid_rows, math.ceil(len(rows) / self.columns)))
        self.grid.style(f"--ward-cols: {self.columns}; --ward-rows: {used}")
        self.grid.clear()
        self.cards = {}
        with self.grid:
            for row in rows[self.page * size:(self.page + 1) * size]:
                card = ui.element("div").classes("ward-card").mark(f"ward-{row.row.object_id}") \
                    .props(f"data-patient={row.row.object_id}")
                self.cards[row.row.object_id] = card
                with card:
                    self.fill(row)
            if not rows:
                ui.label("No patients on this screen's care teams yet.").classes("ward-quiet")

    def fill(self, ward: WardRow) -> None:
        row = ward.row
        with ui.element("div").classes("ward-line"):
            ui.label(self.label(ward)).classes("ward-name").mark("ward-name")
            if row.bed:
                ui.label(row.bed).classes("ward-bed").mark("ward-bed").props(f'title="{row.bed}"')
        with ui.element("div").classes("ward-line"):
            status_badge(self.catalogue, row.mobility_status)
            risky = falls_risk(self.catalogue, row.latest)
            if risky:
                with ui.element("span").classes("ward-flag falls").mark("ward-falls") \
                        .props(f'role="img" aria-label="Falls risk: {", ".join(risky)}"'):
                    ui.icon("warning")
            if row.equipment_out:
                with ui.element("span").classes("ward-flag equipment").mark("ward-equipment") \
                        .props(f'role="img" aria-label="{row.equipment_out} equipment out"'):
                    ui.icon("medical_services")
                    ui.label(str(row.equipment_out))
            if row.open_follow_ups:
                with ui.element("span").classes("ward-flag follow").mark("ward-follow") \
                        .props(f'role="img" aria-label="{row.open_follow_ups} follow-up{"s" if row.open_follow_ups != 1 else ""} open"'):
                    ui.icon("flag")
                    ui.label(str(row.open_follow_ups))
        with ui.element("div").classes("ward-chips"):
            scores = ordered_scores(self.catalogue, row.latest)
            shown = scores if len(scores) <= MAX_CHIPS else scores[:MAX_CHIPS - 1]
            for score in shown:
                self.chip(score)
            if len(shown) < len(scores):
                with ui.element("span").classes("ward-chip more"):
                    ui.label(f"+{len(scores) - len(shown)} more").classes("measure")
            if not scores:
                ui.label("No scores yet").classes("ward-quiet")
        with ui.element("div").classes("ward-foot"):
            if ward.seen_today:
                with ui.element("span").classes("ward-seen yes").mark("ward-seen"):
                    ui.icon("check_circle")
                    ui.label("Seen today")
            else:
                ui.label("Not seen today").classes("ward-seen").mark("ward-not-seen")
            ui.label(updated_text(ward.last_updated)).mark("ward-updated")

    def chip(self, score: LatestScore) -> None:
        measure = self.catalogue.measures.get(score.score_type)
        with ui.element("span").classes("ward-chip").mark(f"ward-score-{score.score_type}"):
            ui.label(short_name(score.score_type)).classes("measure")
            ui.label(value_text(measure, score.value)).classes("value")
            if score.previous is not None:
                way = "up" if score.value > score.previous else "down" if score.value < score.previous else "same"
                ui.icon(TREND_ICONS[way]).style(f"color:{TREND_COLOURS.get(score.trend, TREND_COLOURS['same'])}") \
                    .props(f'aria-label="{TREND_WORDS.get(score.trend, "")}" role="img"')

    async def on_batch(self, batch: live.Batch) -> None:
        names = self.names
        self.ask()  # a lead may have turned names on or off, or changed the role, since
        reload = (DeliveryKind.RESYNC, DeliveryKind.ACCESS_GRANTED, DeliveryKind.ACCESS_ENDED)
        if self.names != names or any(d.kind in reload for d in batch):
            await self.load()
            self.render()
            return
        for patient_id in {d.patient_id for d in batch if d.patient_id}:
            found = await self.store.ward_board(principal=self.session.principal, patient_id=patient_id,
                                                live_refresh=True)
            before = self.rows.get(patient_id)
            if not found:
                self.rows.pop(patient_id, None)
                self.render()
                continue
            self.rows[patient_id] = found[0]
            card = self.cards.get(patient_id)
            if before is None or before.row.bed != found[0].row.bed or card is None:
                self.reorder()  # a new patient, or one who moved bed: its place changes
            else:
                card.clear()
                with card:
                    self.fill(found[0])

    def reorder(self) -> None:
        self.rows = dict(sorted(self.rows.items(), key=lambda item: ward_order(item[1].row)))
        self.render()


@router.page("/ward", title="Ward · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def ward_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    with frame(session, "ward", main_classes="ward-main", kiosk=True):
        await WardView(session).build()
    return None
