"""One patient: profile, status, scores, session notes, equipment, status history and care team.

Addressed by the opaque objectId only. Each section is a form (pages/patient_forms.py, built once)
beside a live region that re-reads through the store as the page's principal when the hub says that
part changed: a push changes lists, counts, charts and read-only text, never a field being typed in.
When access ends the data is replaced by a notice. On a tablet the sections are tabs under the
patient's header (switched in the browser, so they work offline too); on a desktop, two columns.
"""
from __future__ import annotations

import bisect

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, Client, background_tasks, ui

from dashboard.access import Role
from dashboard.api.fhir import everything_url
from dashboard.errors import NotAuthenticated, NotFound, StoreError
from dashboard.hub import Delivery, DeliveryKind, patient_topic
from dashboard.record_types import (
    EquipmentRecord,
    HistoryRecord,
    NoteRecord,
    PatientRecord,
    ScoreRecord,
    UserRecord,
)
from dashboard.store.rules import Permissions
from pages import audit as audit_page, auth, dialogs, live, presence
from pages.dialogs import submit
from pages.display import ago, chart_time, date_text, datetime_text, instant_ms, value_text
from pages.drafts import Draft, Drafts
from pages.frame import PAGE_BUILD_TIMEOUT, ROLE_LABELS, Heading, card_title, frame, status_badge
from pages.patient_admission import ProfileControls
from pages.patient_forms import (
    AddendumDialog,
    EquipmentForm,
    MarkErrorDialog,
    NoteForm,
    ScoreForm,
    StatusDialog,
)
from pages.report import pdf_url, report_url
from pages.score_list import Row, ScoreList, row_json

router = APIRouter()
SCORE_ROWS = 8
SCORE_LOAD_LIMIT = 1000  # the store's most per find
NOTE_PAGE = 10
ACTIVITY_ROWS = 20  # a lead's Activity panel: the newest audit rows of the patient
LONG_NOTE = 900  # characters: longer notes show collapsed, with "Show all"
# A tablet that loses wifi for this long keeps its page (and a save tapped meanwhile goes through).
RECONNECT_SECONDS = 20.0
SCORE_CHANGES = (DeliveryKind.CREATE, DeliveryKind.UPDATE)  # applied in place, without a store read
# Rows (and their JSON) by (record, recorder's name, markable). The pages of one role get the same
# delivered record (memoized on the hub's Event), so one push builds its row once, not once per page
# (bench --only pages, 500 open pages, p99: 73-105 ms with this cache, 106-121 ms without).
ROW_CACHE = 256
_rows: dict[tuple[int, str, bool], tuple[ScoreRecord, Row, str]] = {}

SECTIONS = [("scores", "Scores", "insights"), ("notes", "Notes", "description"),
            ("equipment", "Equipment", "medical_services"), ("history", "History", "timeline"),
            ("team", "Team", "group")]

CSS = """
.pt-grid { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr); gap: 18px; width: 100%; align-items: start; }
.pt-col { display: flex; flex-direction: column; gap: 18px; min-width: 0; }
.pt-name { font-size: 1.6rem; font-weight: 700; letter-spacing: -.01em; margin: 0; }
.pt-meta { color: var(--ot-muted); font-size: .92rem; }
.pt-status .q-badge { font-size: 1rem; padding: 6px 12px; }
.pt-charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; width: 100%; }
.pt-chart { border: 1px solid var(--ot-line); border-radius: 12px; padding: 8px 10px 0; }
.pt-list-row { display: grid; grid-template-columns: 110px 1fr 90px 44px; gap: 10px; align-items: center;
  padding: 8px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.pt-list-row:last-child { border-bottom: 0; }
.pt-error .pt-val { text-decoration: line-through; color: #9aa5b1; }
.pt-note { border: 1px solid var(--ot-line); border-radius: 12px; padding: 12px 14px; width: 100%; }
.pt-note-text { white-space: pre-wrap; word-break: break-word; line-height: 1.45; }
.pt-long .pt-note-text { max-height: 11em; overflow: hidden; }
.pt-long.pt-open .pt-note-text { max-height: none; }
.pt-long .pt-more::after { content: "Show all"; } .pt-long.pt-open .pt-more::after { content: "Show less"; }
.pt-addendum { margin-left: 18px; border-left: 3px solid #cbd5e1; padding: 6px 0 6px 12px; width: calc(100% - 18px); }
.pt-presence { background: #eef6f7; border-radius: 999px; padding: 4px 12px; color: #0b5563; font-size: .85rem; }
.q-timeline__title { font-size: 1rem; font-weight: 600; margin-bottom: 2px; }
.q-timeline__subtitle { font-size: .75rem; }
.q-timeline__content { padding-bottom: 14px; }
.pt-notice { max-width: 640px; margin: 40px auto; text-align: center; }
.pt-tabs { display: none; }
.pt-draft-chip { background: #fff4e5; color: #6b3f00; border-radius: 999px; padding: 2px 10px; font-size: .78rem; font-weight: 600; }
/* Tablet: the header, then one section at a time under a sticky bar of tabs. */
@media (max-width: 1023px) {
  .pt-grid { grid-template-columns: minmax(0, 1fr); }
  .pt-tabs { display: flex; position: sticky; top: 60px; z-index: 5; gap: 6px; padding: 8px 0; width: 100%;
    background: var(--ot-bg); overflow-x: auto; }
  .pt-tabs button { min-height: 48px; padding: 0 16px; border-radius: 999px; border: 1px solid var(--ot-line);
    background: #fff; color: var(--ot-ink); font: inherit; font-weight: 600; display: inline-flex; align-items: center;
    gap: 6px; cursor: pointer; white-space: nowrap; }
  .pt-tabs button[aria-selected="true"] { background: var(--ot-brand); border-color: var(--ot-brand); color: #fff; }
  .pt-tabs button:focus-visible { outline: 3px solid var(--ot-ink); outline-offset: 2px; }
  .pt-section { display: none !important; }
  %(shown)s
}
"""
# Which section shows on a tablet: set on <html> by the tab bar's script, outside anything Vue renders.
SHOWN = " ".join(
    f'html[data-pt-section="{key}"] .pt-section[data-section="{key}"] {{ display: flex !important; }}'
    for key, _, _ in SECTIONS) + ' html:not([data-pt-section]) .pt-section[data-section="scores"] { display: flex !important; }'

TABS_JS = """
<script>
(function () {
  function show(key) {
    document.documentElement.setAttribute('data-pt-section', key);
    document.querySelectorAll('.pt-tabs [data-pt-tab]').forEach(function (b) {
      var on = b.getAttribute('data-pt-tab') === key;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;  // one Tab stop for the bar; the arrow keys move along it
    });
    if (location.hash !== '#' + key) history.replaceState(null, '', '#' + key);
  }
  document.addEventListener('click', function (event) {
    var tab = event.target.closest && event.target.closest('[data-pt-tab]');
    if (tab) { show(tab.getAttribute('data-pt-tab')); window.scrollTo({top: 0}); }
  });
  // The ARIA tabs pattern: Left and Right (wrapping), Home and End pick a tab and keep the focus on it.
  document.addEventListener('keydown', function (event) {
    var tab = event.target.closest && event.target.closest('[data-pt-tab]');
    if (!tab) return;
    var tabs = Array.prototype.slice.call(document.querySelectorAll('.pt-tabs [data-pt-tab]'));
    var i = tabs.indexOf(tab), moves = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1};
    if (!(event.key in moves)) return;
    event.preventDefault();
    var next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    show(next.getAttribute('data-pt-tab'));
    next.focus();
  });
  function start(tries) {
    var key = (location.hash || '').slice(1);
    show(/^(scores|notes|equipment|history|team)$/.test(key) ? key : 'scores');
    // The tab bar is rendered once the page's components mount (no socket needed): mark it then.
    if (!document.querySelector('.pt-tabs [data-pt-tab]') && tries < 100) setTimeout(function () { start(tries + 1); }, 50);
  }
  start(0);
})();
</script>
"""


TABS_HTML = {viewer: "".join(
    f'<button type="button" role="tab" data-pt-tab="{key}" aria-selected="false">'
    f'<i class="q-icon notranslate material-icons" aria-hidden="true" style="font-size:20px">{icon}</i>'
    f'<span>{label}</span></button>'
    for key, label, icon in SECTIONS if not (viewer and key == "notes")) for viewer in (False, True)}


class PatientView:
    def __init__(self, session: auth.PageSession, patient: PatientRecord, perms: Permissions):
        self.session = session
        self.store = session.store
        self.catalogue = self.store.catalogue
        self.patient = patient
        self.pid = patient.id
        # What this user may do here: the store's answer, asked again with every push (a role or
        # an assignment may have changed). Controls follow it; the store decides every save anyway.
        self.perms = perms
        self.users: dict[str, str] = {}
        self.scores: list[ScoreRecord] = []
        self.score_keys: list[int] = []  # -instant_ms(score_date) of each score: ascending, for bisect
        self.score_ids: set[str] = set()
        self.notes: list[NoteRecord] = []
        self.equipment: list[EquipmentRecord] = []
        self.history: list[HistoryRecord] = []
        self.note_limit = NOTE_PAGE
        self.score_limit = SCORE_ROWS
        self.ended = False
        # The scores section's parts a pushed score updates in place (set by render_scores).
        self.charts: dict[str, ui.echart] = {}
        self.scores_empty: ui.label | None = None
        self.score_list: ScoreList
        # Opening the page is audited; the pushed refreshes that follow continue the same view.
        self.opened = False
        self.sub = None
        self.drafts = Drafts(session.principal.user_id, patient.id)
        self.forms: dict[str, ScoreForm | NoteForm | EquipmentForm] = {}
        # Drafts of dialogs not open yet (status, addenda), put back when the dialog opens.
        self.waiting: dict[str, Draft] = {}
        self.open_dialogs: list[StatusDialog | AddendumDialog] = []
        self.team_pick: ui.select | None = None
        # What the team list shows now, (therapist, its name, may change) and member → (name, role,
        # since), with each member's row: refresh_team redraws only on a change.
        self._team_shown: tuple[tuple | None, dict] = (None, {})
        self._team_rows: dict[str, ui.element] = {}
        self._choices_due: tuple[set[str], str] | None = None  # the picker's choices are behind the team

    # -- who may do what (the store decides; this only hides controls that would be refused) -----
    def ask(self) -> Permissions:
        """Asks the store again: NotFound once the patient is out of sight, NotAuthenticated once
        the session ended."""
        self.perms = self.session.permissions(self.pid)
        return self.perms

    def name_of(self, user_id: str | None) -> str:
        return self.users.get(user_id or "", "someone")

    # -- loading ----------------------------------------------------------------------------------
    async def _find(self, class_name: str, order: str, limit: int = 500) -> list:
        return await self.store.find(principal=self.session.principal, class_name=class_name,
                                     where={"patient": self.pid}, order=order, limit=limit,
                                     live_refresh=self.opened)

    async def load_users(self) -> None:
        self.users = {u.id: u.username for u in await self.store.list_users(principal=self.session.principal)}

    async def load_patient(self) -> None:
        self.patient = await self.store.get(principal=self.session.principal, class_name="Patient",
                                            object_id=self.pid, live_refresh=self.opened)  # type: ignore[assignment]

    async def load_scores(self) -> None:
        self.set_scores(await self._find("MobilityScore", "-scoreDate,-createdAt", SCORE_LOAD_LIMIT))

    def set_scores(self, scores: list[ScoreRecord]) -> None:
        self.scores = scores
        self.score_keys = [-instant_ms(s.score_date) for s in scores]
        self.score_ids = {s.id for s in scores}

    async def load_notes(self) -> None:
        self.notes = await self._find("SessionNote", "-sessionDate,-createdAt", 1000) if self.perms.reads_notes else []

    async def load_equipment(self) -> None:
        self.equipment = await self._find("EquipmentLog", "-checkedOutAt", 500)

    async def load_history(self) -> None:
        rows = await self._find("StatusHistory", "-createdAt", 200)
        self.history = sorted(rows, key=lambda h: h.sequence, reverse=True)

    async def load_all(self) -> None:
        await self.load_users()
        await self.load_scores()
        await self.load_notes()
        await self.load_equipment()
        await self.load_history()

    # -- building ---------------------------------------------------------------------------------
    async def build(self) -> None:
        await self.load_all()
        self.opened = True
        ui.add_css(CSS.replace("%(shown)s", SHOWN))
        ui.add_head_html(TABS_JS)
        self.root = ui.column().classes("w-full gap-4")
        # What the page is built for: forms if the user may record, notes if they may read them.
        self.built_for = (self.perms.can_record, self.perms.reads_notes)
        with self.root:
            self.build_header()
            self.build_tabs()
            with ui.element("div").classes("pt-grid"):
                with ui.element("div").classes("pt-col"):
                    self.scores_live = self.build_section("scores", ScoreForm)
                    self.equipment_live = self.build_section("equipment", EquipmentForm)
                with ui.element("div").classes("pt-col"):
                    if self.perms.reads_notes:
                        self.notes_live = self.build_section("notes", NoteForm)
                    self.history_live = self.build_section("history")
                    self.team_live = self.build_section("team")
            if self.perms.is_lead:
                await self.build_activity()
        self.render_live()
        await self.profile.refresh_banner()  # -- admission: discharged when and why
        # The care team arrives as "CareTeam" deliveries on the patient's topic, like any record.
        self.sub = live.watch(self.session, [patient_topic(self.pid)], self.on_batch, at_once=self.at_once)
        me = presence.Viewer(ui.context.client.id, self.session.principal.user_id, self.session.username,
                             self.perms.role)
        presence.join(self.pid, me, self.render_presence)
        if self.perms.can_record:
            background_tasks.create(self.restore_once_connected(ui.context.client), name="restore-drafts")

    async def build_activity(self) -> None:
        """For a lead: who viewed and who changed this patient's records, and when (the audit log's
        newest rows for it, as the page opened; the full log is on the Audit page)."""
        with ui.column().classes("ot-card gap-2").mark("activity"):
            with ui.row().classes("items-center gap-2 w-full"):
                ui.icon("manage_search", size="20px").classes("text-primary")
                card_title("Activity")
                ui.space()
                ui.link("Full audit log", f"/audit?patient={self.pid}").mark("activity-audit-link")
            try:
                rows = await self.store.patient_activity(principal=self.session.principal, patient_id=self.pid,
                                                         limit=ACTIVITY_ROWS)
            except StoreError as exc:
                ui.label(exc.message).classes("ot-muted")
                return
            if not rows:
                ui.label("No activity recorded yet.").classes("ot-muted")
            for row in rows:
                with ui.row().classes("w-full items-center gap-3 no-wrap").mark("activity-row"):
                    ui.label(audit_page.when_text(row.at)).classes("ot-muted").style("min-width: 170px")
                    ui.label(audit_page.who_text(row)).classes("font-medium")
                    ui.label(f"{audit_page.ROW_ACTIONS.get(row.action, row.action)} "
                             f"{audit_page.CLASSES.get(row.class_name, row.class_name).lower()}")
                    if row.outcome != "ok":
                        ui.badge(row.outcome.replace("_", " "), color="negative").props("outline")

    def build_tabs(self) -> None:
        """One static element (fixed markup, no user data): switched by TABS_JS in the browser."""
        ui.html(TABS_HTML[not self.perms.reads_notes], sanitize=False).classes("pt-tabs") \
            .props('role="tablist" aria-label="Sections" data-testid=section-tabs').mark("section-tabs")

    def build_section(self, key: str, form: type | None = None) -> ui.column:
        """A section card: its title, its form (if the user may record) and its live region."""
        title, icon = next((label, icon) for k, label, icon in SECTIONS if k == key)
        titles = {"scores": "Mobility scores", "notes": "Session notes", "history": "Status history",
                  "team": "Care team"}
        with ui.column().classes("ot-card gap-3 pt-section").props(f"data-section={key}").mark(
                {"team": "care-team"}.get(key, key)):
            with ui.row().classes("items-center gap-2"):
                ui.icon(icon, size="20px").classes("text-primary")
                card_title(titles.get(key, title))
            if form is not None and self.perms.can_record:
                built = form(self)
                self.forms[built.name] = built
            live_region = ui.column().classes("w-full gap-3")
            if key == "team":
                self.team_add = ui.column().classes("w-full gap-0")  # the add-member picker (show_team_add)
            return live_region

    def render_live(self) -> None:
        self.render_header()
        self.render_scores()
        self.render_equipment()
        if self.perms.reads_notes:
            self.render_notes()
        self.render_history()
        ui.timer(0, self.refresh_team, once=True)

    # -- drafts -----------------------------------------------------------------------------------
    async def restore_once_connected(self, client: Client) -> None:
        try:
            await client.connected(timeout=PAGE_BUILD_TIMEOUT)
        except TimeoutError:
            return  # never connected: the page is let go (socket_guard), and its drafts stay put
        with client:
            await self.restore_drafts()

    async def restore_drafts(self) -> None:
        """Puts back what this user typed for this patient on this device, and sends the saves that
        were tapped while the connection was down (each once: they carry their draft's key)."""
        if self.ended:
            return
        drafts = await self.drafts.load()
        for name, draft in drafts.items():
            if name in self.forms:
                self.forms[name].restore(draft)
            elif name == "status" or name.startswith(("addendum:", "error:")):
                self.waiting[name] = draft
        self.drafts.ready()
        self.render_draft_marks()
        for name, draft in drafts.items():
            if not draft.queued:
                continue
            sent = False
            if name in self.forms:
                sent = await self.forms[name].save(draft.key)
            elif name == "status" and self.perms.can_manage:
                sent = await self.open_status_dialog().save(draft.key)
            elif name.startswith("addendum:") and (note := self.note_by_id(name.split(":", 1)[1])) is not None:
                sent = await self.addendum(note).save(draft.key)
            if not sent:  # refused (its reason shows under the field): kept, but not sent again unasked
                self.drafts.unqueue(name)

    def render_draft_marks(self) -> None:
        """A chip on the buttons whose dialog holds a draft: the text is one tap away."""
        self.status_draft.set_visibility("status" in self.waiting)
        if self.perms.reads_notes:
            self.render_notes()

    def dialog_closed(self, dialog: StatusDialog | AddendumDialog) -> None:
        if dialog in self.open_dialogs:
            self.open_dialogs.remove(dialog)

    # -- header -----------------------------------------------------------------------------------
    def build_header(self) -> None:
        with ui.column().classes("ot-card gap-2"):
            with ui.row().classes("w-full items-start justify-between gap-3"):
                with ui.column().classes("gap-1"):
                    with ui.row().classes("items-center gap-2"):
                        with ui.link(target="/").props('aria-label="Back to caseload"') \
                                .style("text-decoration:none; min-width:44px; min-height:44px; display:inline-flex; "
                                       "align-items:center; justify-content:center"):
                            ui.icon("arrow_back", size="24px").classes("ot-muted")
                        self.name_label = Heading(level=1).classes("pt-name") \
                            .mark("patient-name")
                    self.meta_label = ui.label().classes("pt-meta")
                    self.build_export_links()  # -- exports: report, PDF, FHIR
                with ui.row().classes("items-center gap-3 pt-status"):
                    self.badge_host = ui.row().classes("items-center")
                    with ui.column().classes("items-end gap-1"):
                        self.status_button = ui.button("Change status", icon="swap_vert",
                                                       on_click=self.open_status_dialog) \
                            .props("outline color=primary data-testid=change-status").mark("change-status")
                        self.status_draft = ui.label("Draft kept").classes("pt-draft-chip").props("data-testid=status-draft").mark("status-draft")
                        self.status_draft.set_visibility(False)
                        # -- admission: edit profile and discharge, for those the store lets
                        self.profile = ProfileControls(self)
            self.profile.build_banner()
            self.presence_row = ui.row().classes("items-center gap-2")

    def build_export_links(self) -> None:
        """The patient's progress report (printable, pages/report.py), its PDF and the FHIR export;
        each address carries the object id only."""
        style = "ot-link-button"
        with ui.row().classes("items-center gap-2").mark("patient-exports"):
            ui.link("Progress report", report_url(self.pid)).classes(style).mark("open-report")
            ui.link("PDF", pdf_url(self.pid)).props("download").classes(style).mark("report-pdf")
            ui.link("Export FHIR", everything_url(self.pid)).props("download").classes(style).mark("export-fhir")

    def render_header(self) -> None:
        p = self.patient
        # The store already gives a viewer initials unless a lead turned names on.
        self.name_label.text = p.display_name
        meta = []  # a viewer's record has no identifier and no date of birth
        if p.patient_id:
            meta.append(p.patient_id)
        if p.date_of_birth:
            meta.append(f"Born {date_text(p.date_of_birth)}")
        meta.append(f"Therapist: {self.name_of(p.primary_therapist_id)}")
        if p.bed:
            meta.append(p.bed)
        self.meta_label.text = " · ".join(meta)
        self.badge_host.clear()
        with self.badge_host:
            status_badge(self.catalogue, p.mobility_status).mark("status-badge").props("data-testid=status-badge")
        self.status_button.set_visibility(self.perms.can_manage)
        self.profile.show()  # -- admission
        self.render_presence()

    def render_presence(self) -> None:
        if self.ended or not hasattr(self, "presence_row"):
            return
        here = ui.context.client.id
        others: dict[str, presence.Viewer] = {}
        for v in presence.viewers(self.pid):
            if v.client_id != here and v.user_id != self.session.principal.user_id:
                others.setdefault(v.user_id, v)
        self.presence_row.clear()
        with self.presence_row:
            if others:
                with ui.row().classes("pt-presence items-center gap-2").mark("presence"):
                    ui.icon("visibility", size="16px")
                    ui.label("Also viewing: " + ", ".join(
                        f"{v.username} ({ROLE_LABELS.get(v.role, v.role)})" for v in others.values()))

    def open_status_dialog(self) -> StatusDialog:
        existing = next((d for d in self.open_dialogs if isinstance(d, StatusDialog)), None)
        if existing is not None:
            return existing
        dialog = StatusDialog(self, self.waiting.pop("status", None))
        self.status_draft.set_visibility(False)
        self.open_dialogs.append(dialog)
        return dialog

    def last_status_change_by(self) -> str:
        change = next((h for h in self.history if h.status_type == "mobilityStatus"), None)
        return self.name_of(change.changed_by_id) if change is not None else "Someone"

    # -- scores -----------------------------------------------------------------------------------
    def render_scores(self) -> None:
        self.scores_live.clear()
        self.charts = {}
        self.scores_empty = None
        with self.scores_live:
            valid = [s for s in self.scores if not s.entered_in_error]
            with ui.element("div").classes("pt-charts").mark("charts"):
                for score_type in [m for m in self.catalogue.measures if any(s.score_type == m for s in valid)]:
                    self.charts[score_type] = self.chart(score_type, [s for s in valid if s.score_type == score_type])
            if not self.scores:
                self.scores_empty = ui.label("No scores recorded yet.").classes("ot-empty w-full")
            # The list and its "Show more" button sit in one column with the card's gap between them.
            self.score_list = ScoreList([self.score_row(s)[0] for s in self.scores[: self.score_limit]],
                                        self.more_text(), on_mark=self.mark_error_of, on_more=self.more_scores) \
                .classes("nicegui-column w-full gap-3").mark("score-list")

    def more_text(self) -> str:
        """The "Show more" button's text; empty when every score is shown (no button)."""
        hidden = len(self.scores) - self.score_limit
        return f"Show more ({hidden} older)" if hidden > 0 else ""

    # -- scores: applying a pushed score without re-reading the store ----------------------------
    def apply_score(self, delivery: Delivery) -> bool:
        """Applies one pushed score in place. False when it cannot be done exactly as a fresh load
        would show it (the caller then reloads the section from the store)."""
        score = delivery.record  # None when it cannot be read back exactly: the section re-reads
        if not isinstance(score, ScoreRecord) or delivery.kind not in SCORE_CHANGES:
            return False
        if score.score_type not in self.catalogue.measures or score.recorded_by_id not in self.users:
            return False  # a new measure or a new colleague: the page's lookups are stale
        key = -instant_ms(score.score_date)
        if delivery.kind == DeliveryKind.CREATE:
            index = bisect.bisect_left(self.score_keys, key)
            if index < len(self.scores) and self.score_keys[index] == key:
                # The page read the store after this commit, or another score shares its millisecond
                # (the store breaks that tie on createdAt at microsecond precision).
                return score.id in self.score_ids
            if score.id in self.score_ids:
                return True  # already loaded (and changed since): the page read the store after this commit
            if len(self.scores) >= SCORE_LOAD_LIMIT:
                return False
            self.scores.insert(index, score)
            self.score_keys.insert(index, key)
            self.score_ids.add(score.id)
            if self.scores_empty is not None or (not score.entered_in_error and score.score_type not in self.charts):
                self.render_scores()  # the first score, or a measure's first chart: rare, and no store read
                return True
            shown = index < self.score_limit
            row, encoded = self.score_row(score) if shown else (None, "null")
            chart = None if score.entered_in_error else self.charts[score.score_type]
            point_index, point = 0, None
            if chart is not None:
                at = chart_time(score.score_date)
                point_index = bisect.bisect_left(chart.options["series"][0]["data"], at, key=lambda p: p[0])
                point = [at, score.score_value]
            self.score_list.insert(index if shown else None, row, encoded,
                                   drop_last=shown and len(self.score_list.rows) >= self.score_limit,
                                   more=self.more_text(), chart=chart, point_index=point_index, point=point)
            return True
        known = next((i for i, s in enumerate(self.scores) if s.id == score.id), None)
        if known is None:
            return False
        old = self.scores[known]
        if self.score_keys[known] != key or old.score_type != score.score_type:
            return False  # it moves in the list or between charts
        self.scores[known] = score
        if known < len(self.score_list.rows):
            self.score_list.put(known, *self.score_row(score))
        charted = any(not s.entered_in_error and s.score_type == score.score_type for s in self.scores)
        if charted != (score.score_type in self.charts):
            self.render_scores()  # a chart appears or goes
        elif charted:
            self.refresh_chart(score.score_type)
        return True

    def refresh_chart(self, score_type: str) -> None:
        chart = self.charts[score_type]
        chart.options["series"][0]["data"] = self.chart_points(
            [s for s in self.scores if not s.entered_in_error and s.score_type == score_type])
        chart.update()

    def more_scores(self) -> None:
        self.score_limit += SCORE_ROWS * 2
        self.render_scores()

    @staticmethod
    def chart_points(scores: list[ScoreRecord]) -> list[list]:
        points = sorted(((s.score_date, s.score_value) for s in scores), key=lambda x: x[0])
        return [[chart_time(at), value] for at, value in points]

    def chart(self, score_type: str, scores: list[ScoreRecord]) -> ui.echart:
        measure = self.catalogue.measures[score_type]
        lower = measure.better == "lower"
        with ui.column().classes("pt-chart gap-0"):
            with ui.row().classes("w-full justify-between items-center"):
                ui.label(measure.name).classes("font-semibold text-sm")
                ui.label(("↓ lower is better" if lower else "↑ higher is better")).classes("ot-muted text-xs")
            return ui.echart({
                "animation": False,
                "grid": {"left": 40, "right": 12, "top": 12, "bottom": 28},
                "tooltip": {"trigger": "axis"},
                "xAxis": {"type": "time", "axisLabel": {"fontSize": 10, "hideOverlap": True}},
                # Inverted for lower-is-better measures, so "up" always means improving.
                "yAxis": {"type": "value", "inverse": lower, "scale": True, "axisLabel": {"fontSize": 10}},
                "series": [{"type": "line", "smooth": False, "symbolSize": 7, "name": measure.name,
                            "data": self.chart_points(scores),
                            "lineStyle": {"width": 2.5, "color": "#127b8c"},
                            "itemStyle": {"color": "#0b5563"}, "areaStyle": {"opacity": 0.06}}],
            }).classes(f"w-full chart-{score_type}").style("height: 170px").mark(f"chart-{score_type}")

    def score_row(self, score: ScoreRecord) -> tuple[Row, str]:
        """The row a score shows on this page, and its JSON (shared by the pages that show the same)."""
        recorder = self.name_of(score.recorded_by_id)
        markable = self.perms.can_mark(score)
        key = (id(score), recorder, markable)
        hit = _rows.get(key)
        if hit is not None and hit[0] is score:
            return hit[1], hit[2]
        measure = self.catalogue.measures.get(score.score_type)
        sub = f"by {recorder}"
        if score.entered_in_error:
            sub = f"Entered in error: {score.error_reason or ''}"
        elif score.notes:
            sub += f" · {score.notes}"
        row = {"id": score.id, "date": date_text(score.score_date),
               "measure": measure.name if measure else score.score_type, "sub": sub,
               "value": value_text(measure, score.score_value), "error": bool(score.entered_in_error),
               "markable": markable}
        if len(_rows) >= ROW_CACHE:
            _rows.clear()
        _rows[key] = (score, row, row_json(row))  # holding the record keeps its id from being reused
        return row, _rows[key][2]

    def mark_error_of(self, score_id: str) -> None:
        """The list's mark button: only for a row this page shows as markable."""
        score = next((s for s in self.scores if s.id == score_id), None)
        if score is not None and any(r["id"] == score_id and r["markable"] for r in self.score_list.rows):
            MarkErrorDialog(self, score, self.waiting.pop(f"error:{score.id}", None))

    # -- notes ------------------------------------------------------------------------------------
    def note_by_id(self, note_id: str) -> NoteRecord | None:
        return next((n for n in self.notes if n.id == note_id), None)

    def addenda_of(self, note_id: str) -> list[NoteRecord]:
        return sorted((n for n in self.notes if n.amends_id == note_id), key=lambda n: n.created_at)

    def render_notes(self) -> None:
        self.notes_live.clear()
        with self.notes_live:
            ids = {n.id for n in self.notes}
            # An addendum whose note is beyond what was loaded still shows, as its own entry.
            roots = [n for n in self.notes if not n.amends_id or n.amends_id not in ids]
            with ui.column().classes("w-full gap-2").props("data-testid=note-feed").mark("note-feed"):
                for note in roots[: self.note_limit]:
                    self.note_entry(note, self.addenda_of(note.id))
                if not roots:
                    ui.label("No session notes yet.").classes("ot-empty w-full")
            if len(roots) > self.note_limit:
                ui.button(f"Show older notes ({len(roots) - self.note_limit})", on_click=self.more_notes) \
                    .props("flat color=primary")

    def more_notes(self) -> None:
        self.note_limit += NOTE_PAGE
        self.render_notes()

    def note_entry(self, note: NoteRecord, addenda: list[NoteRecord]) -> None:
        types = self.catalogue.vocabulary["sessionType"]
        long = len(note.note_text or "") > LONG_NOTE or (note.note_text or "").count("\n") > 10
        with ui.column().classes("pt-note gap-1" + (" pt-long" if long else "")).mark(f"note-{note.id}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.badge(types[note.session_type].label if note.session_type in types else note.session_type,
                         color="blue-grey-1", text_color="blue-grey-9").props("rounded")
                ui.label(f"{datetime_text(note.session_date)} · {self.name_of(note.author_id)}") \
                    .classes("text-sm ot-muted")
                ui.space()
                if note.follow_up_needed:
                    ui.badge("Follow-up", color="orange-1", text_color="deep-orange-10").props("rounded") \
                        .mark("follow-up-flag")
                    if self.perms.can_clear_follow_up:
                        ui.button("Clear", icon="done", on_click=lambda n=note: self.clear_follow_up(n)) \
                            .props("flat dense color=primary").mark("clear-follow-up")
            ui.label(note.note_text).classes("pt-note-text")  # text, never HTML
            if long:  # collapsed in the browser alone: no round trip, nothing re-sent
                ui.button().props("flat dense color=primary").classes("pt-more self-start") \
                    .on("click", js_handler="(e) => e.target.closest('.pt-note').classList.toggle('pt-open')")
            for extra in addenda:
                with ui.column().classes("pt-addendum gap-0").mark(f"addendum-{extra.id}"):
                    ui.label(f"Addendum · {datetime_text(extra.created_at)} · {self.name_of(extra.author_id)}") \
                        .classes("text-xs ot-muted")
                    ui.label(extra.note_text).classes("pt-note-text")
            if self.perms.can_record:
                drafted = f"addendum:{note.id}" in self.waiting
                ui.button("Continue addendum (draft kept)" if drafted else "Add addendum", icon="edit_note",
                          on_click=lambda n=note: self.addendum(n)) \
                    .props("flat dense color=primary").classes("self-start").props("data-testid=add-addendum").mark("add-addendum")

    def addendum(self, note: NoteRecord) -> AddendumDialog:
        name = f"addendum:{note.id}"
        existing = next((d for d in self.open_dialogs if isinstance(d, AddendumDialog) and d.name == name), None)
        if existing is not None:
            return existing
        draft = self.waiting.pop(name, None)
        dialog = AddendumDialog(self, note, draft)
        self.open_dialogs.append(dialog)
        if draft is not None:
            self.render_notes()
        return dialog

    async def clear_follow_up(self, note: NoteRecord) -> None:
        if not await dialogs.confirm("Clear the follow-up?", "The note no longer counts as needing a follow-up, "
                                     "on the caseload and the ward screen, for everyone.", "Clear follow-up",
                                     danger=False):
            return
        await submit(self.store.clear_follow_up(principal=self.session.principal, note_id=note.id),
                     done="Follow-up cleared")

    # -- equipment --------------------------------------------------------------------------------
    def render_equipment(self) -> None:
        self.equipment_live.clear()
        statuses = self.catalogue.vocabulary["equipmentStatus"]
        out = [e for e in self.equipment if e.status != "returned"]
        back = [e for e in self.equipment if e.status == "returned"][:5]
        with self.equipment_live:
            ui.label("Out now").classes("text-sm font-semibold ot-muted")
            with ui.column().classes("w-full gap-0").props("data-testid=equipment-out").mark("equipment-out"):
                for log in out:
                    with ui.row().classes("pt-list-row w-full").style("grid-template-columns: 1fr 120px 110px"):
                        with ui.column().classes("gap-0"):
                            ui.label(log.equipment_name).classes("font-medium")
                            ui.label(" · ".join(x for x in (log.serial_number, f"out {ago(log.checked_out_at)}")
                                                if x)).classes("text-xs ot-muted")
                        ui.badge(statuses[log.status].label if log.status in statuses else log.status,
                                 color="teal-1" if log.status == "checked_out" else "orange-1",
                                 text_color="teal-10" if log.status == "checked_out" else "deep-orange-10").props("rounded")
                        if self.perms.can_return_equipment:
                            ui.button("Return", icon="input", on_click=lambda e=log: self.return_item(e)) \
                                .props("outline dense color=primary").mark("equipment-return")
                        else:
                            ui.element("span")
                if not out:
                    ui.label("Nothing checked out.").classes("ot-muted text-sm")
            if back:
                ui.label("Returned recently").classes("text-sm font-semibold ot-muted")
                for log in back:
                    ui.label(f"{log.equipment_name} — returned {datetime_text(log.returned_at)}") \
                        .classes("text-sm ot-muted")

    async def return_item(self, log: EquipmentRecord) -> None:
        if not await dialogs.confirm(f"Return {log.equipment_name}?",
                                     "It leaves this patient's equipment and is recorded as returned now.",
                                     "Return", danger=False):
            return
        await submit(self.store.return_equipment(principal=self.session.principal, log_id=log.id),
                     done=f"{log.equipment_name} returned")

    # -- history ----------------------------------------------------------------------------------
    def render_history(self) -> None:
        self.history_live.clear()
        mobility = self.catalogue.vocabulary["mobilityStatus"]
        kit = self.catalogue.vocabulary["equipmentStatus"]
        names = {e.id: e.equipment_name for e in self.equipment}
        with self.history_live:
            if not self.history:
                ui.label("No changes yet.").classes("ot-muted")
                return
            with ui.timeline(side="right", color="primary").classes("w-full").mark("timeline"):
                for h in self.history[:40]:
                    vocab = mobility if h.status_type == "mobilityStatus" else kit
                    to = vocab[h.to_value].label if h.to_value in vocab else h.to_value
                    if h.status_type == "admission":  # -- admission: a discharge
                        title = "Discharged" if h.to_value == "discharged" else "Readmitted"
                    elif h.status_type == "mobilityStatus":
                        title = f"{vocab[h.from_value].label} → {to}" if h.from_value in vocab else f"Admitted: {to}"
                    else:
                        title = f"{names.get(h.equipment_log_id or '', 'Equipment')}: {to.lower()}"
                    ui.timeline_entry(h.change_reason or "", title=title,
                                      subtitle=f"{datetime_text(h.created_at)} · {self.name_of(h.changed_by_id)}",
                                      icon="accessibility_new" if h.status_type == "mobilityStatus"
                                      else "medical_services")

    # -- care team --------------------------------------------------------------------------------
    def show_team_add(self) -> None:
        """The add-member picker, for who may change the team now: built once, its options kept
        current by refresh_team; gone (or back) when the right changes."""
        if self.perms.can_change_team == (self.team_pick is not None):
            return
        self.team_add.clear()
        self.team_pick = None
        if not self.perms.can_change_team:
            return
        with self.team_add, ui.row().classes("w-full items-center gap-2"):
            self.team_pick = ui.select({}, label="Add to care team", with_input=True).props("outlined") \
                .classes("grow").mark("team-add-select")
            self.team_pick.on("popup-show", self.choices_on_open)
            ui.button("Add", icon="person_add", on_click=self.add_member).props("unelevated color=primary") \
                .style("height: 56px").mark("team-add")

    async def refresh_team(self) -> None:
        """Re-reads the team (and the picker's choices): on load, and when a CareTeam or Patient
        delivery says it changed, whoever changed it and on whichever page."""
        if self.ended:
            return
        try:
            team = await self.store.care_team(principal=self.session.principal, patient_id=self.pid)
        except NotFound:
            await self.show_ended()
            return
        member_ids = {u.id for u, _ in team}
        therapist = self.patient.primary_therapist_id
        self.show_team_add()
        # Redrawn only when what it shows changed, and a removal only drops its row: a status change
        # refreshes every open page of the patient, and 250 pages each rebuilding a 60-member list
        # held the instance's loop for seconds (bench cluster, revocation).
        frame_key = (therapist, self.name_of(therapist), self.perms.can_change_team)
        rows = {u.id: (u.username, u.role, granted) for u, granted in team}
        shown_frame, shown_rows = self._team_shown
        if frame_key == shown_frame and all(shown_rows.get(uid) == row for uid, row in rows.items()):
            for gone in set(shown_rows) - set(rows):
                self._team_rows.pop(gone).delete()
            self._team_shown = (frame_key, rows)
            # The picker's choices when it next opens: not one account list read per open page now.
            self._choices_due = (member_ids, therapist) if set(shown_rows) != set(rows) else self._choices_due
            return
        self._team_shown, self._team_rows = (frame_key, rows), {}
        self._choices_due = None
        self.team_live.clear()
        with self.team_live, ui.column().classes("w-full gap-0").mark("team-list"):
            with ui.row().classes("pt-list-row w-full").style("grid-template-columns: 1fr auto"):
                ui.label(f"{self.name_of(therapist)}").classes("font-medium")
                ui.label("Primary therapist").classes("text-xs ot-muted")
            for user, granted in team:
                with ui.row().classes("pt-list-row w-full items-center").style("grid-template-columns: 1fr auto 44px") \
                        as member_row:
                    self._team_rows[user.id] = member_row
                    with ui.column().classes("gap-0"):
                        ui.label(user.username).classes("font-medium")
                        ui.label(f"since {date_text(granted)}").classes("text-xs ot-muted")
                    ui.label(ROLE_LABELS.get(user.role, user.role)).classes("text-xs ot-muted")
                    if self.perms.can_change_team:
                        ui.button(icon="person_remove", on_click=lambda u=user: self.remove_member(u.id, u.username)) \
                            .props(f'flat round color=grey-7 aria-label="Remove {user.username}"') \
                            .mark(f"remove-{user.username}")
                    else:
                        ui.element("span")
        await self.refresh_team_choices(member_ids, therapist)

    async def choices_on_open(self) -> None:
        """The picker opens: its choices as of now, if the team changed since they were made."""
        if self._choices_due is not None:
            member_ids, therapist = self._choices_due
            self._choices_due = None
            await self.refresh_team_choices(member_ids, therapist)

    async def refresh_team_choices(self, member_ids: set[str], therapist: str) -> None:
        """The add-member picker's choices: accounts not on the team yet."""
        if self.team_pick is not None:
            users: list[UserRecord] = await self.store.list_users(principal=self.session.principal)
            # A lead already sees every patient: a care team adds nothing for one.
            self.team_pick.set_options({u.id: f"{u.username} ({ROLE_LABELS.get(u.role, u.role)})" for u in users
                                        if u.id not in member_ids and u.id != therapist and u.role != Role.LEAD
                                        and u.active is not False})

    async def add_member(self) -> None:
        """The list follows from the CareTeam delivery the store publishes, here as on every page."""
        if self.team_pick is None or not self.team_pick.value:
            return
        pick = self.team_pick
        if await submit(self.store.add_care_team_member(principal=self.session.principal, patient_id=self.pid,
                                                        user_id=pick.value), field=pick):
            pick.value = None
            pick.error = None

    async def remove_member(self, user_id: str, username: str) -> None:
        if not await dialogs.confirm(f"Remove {username} from the care team?",
                                     f"{username} loses access to this patient at once: their open pages close "
                                     "it and the patient leaves their caseload.", "Remove"):
            return
        await submit(self.store.remove_care_team_member(principal=self.session.principal, patient_id=self.pid,
                                                        user_id=user_id))

    # -- live -------------------------------------------------------------------------------------
    def at_once(self, delivery: Delivery) -> bool:
        """A pushed score is applied in the publishing step; anything else goes to on_batch, and so
        does a score when the rights the page was built for have changed."""
        if self.ended or delivery.class_name != "MobilityScore" or delivery.kind not in SCORE_CHANGES:
            return False
        try:
            perms = self.ask()
        except (NotFound, NotAuthenticated):
            return False
        return (perms.can_record, perms.reads_notes) == self.built_for and self.apply_score(delivery)

    async def on_batch(self, batch: live.Batch) -> None:
        if self.ended:
            return
        if any(d.kind == DeliveryKind.ACCESS_ENDED and d.patient_id in (self.pid, None) for d in batch):
            await self.show_ended()
            return
        try:
            perms = self.ask()  # a push may follow a change of rights: the controls follow the store
        except NotFound:
            await self.show_ended()
            return
        except NotAuthenticated:
            return  # the session ended: the frame sends the page to sign in (live.end_with_session)
        if (perms.can_record, perms.reads_notes) != self.built_for:
            # Forms or the notes section come or go: rebuilt for the new rights. Drafts stay on the device.
            self.ended = True
            ui.navigate.reload()
            return
        classes = {d.class_name for d in batch}
        resync = any(d.kind == DeliveryKind.RESYNC for d in batch)
        if resync or "Patient" in classes:
            try:
                await self.load_patient()
            except NotFound:
                await self.show_ended()
                return
        if resync:
            await self.load_all()
            self.render_live()
        else:
            if "Patient" in classes:
                await self.load_users()
            if "MobilityScore" in classes:
                # Applied from the deliveries themselves: one push then costs each open page a row and a
                # chart update, not a query and a re-render. Anything not exactly applicable reloads.
                scores = [d for d in batch if d.class_name == "MobilityScore"]
                if not all(self.apply_score(d) for d in scores):
                    await self.load_users()
                    await self.load_scores()
                    self.render_scores()
            if "SessionNote" in classes and perms.reads_notes:
                await self.load_notes()
                self.render_notes()
            if "EquipmentLog" in classes:
                await self.load_equipment()
                self.render_equipment()
            if "StatusHistory" in classes:
                await self.load_history()
                self.render_history()
            if "Patient" in classes:
                self.render_header()
                await self.profile.refresh_banner()  # -- admission
            if "Patient" in classes or "CareTeam" in classes:
                await self.refresh_team()
        # What an open dialog shows may now be stale: each says so beside its form.
        for dialog in list(self.open_dialogs):
            if isinstance(dialog, StatusDialog) and (resync or "Patient" in classes):
                if "StatusHistory" not in classes:  # its history row may come in a later batch
                    await self.load_history()
                dialog.patient_changed(self.last_status_change_by())
            elif isinstance(dialog, AddendumDialog) and (resync or "SessionNote" in classes):
                dialog.notes_changed()

    async def show_ended(self) -> None:
        """Replaces every bit of this patient's data with a notice; nothing stale stays on screen.
        Drafts stay on the device (nothing here clears them)."""
        self.ended = True
        if self.sub is not None:
            self.sub.close()
        presence.leave(self.pid, ui.context.client.id)
        for dialog in list(self.open_dialogs):
            dialog.box.close()
        self.root.clear()
        with self.root, ui.column().classes("ot-card pt-notice items-center gap-3").mark("access-ended").props("data-testid=access-ended"):
            ui.icon("lock", size="40px").classes("text-primary")
            Heading("Your access to this patient has ended", 1).classes("text-xl font-semibold")
            ui.label("The patient may have been reassigned, or you were removed from the care team. "
                     "The record is no longer shown here.").classes("ot-muted")
            ui.button("Back to caseload", icon="arrow_back", on_click=lambda: ui.navigate.to("/")) \
                .props("unelevated color=primary")


@router.page("/patient/{object_id}", title="Patient · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT,
             reconnect_timeout=RECONNECT_SECONDS)
async def patient_page(request: Request, object_id: str) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    try:
        patient = await session.store.get(principal=session.principal, class_name="Patient", object_id=object_id)
        perms = session.permissions(patient.id)
    except NotFound:
        # Not readable and not there answer the same way (ACCESS.md "What a denial looks like").
        raise HTTPException(status_code=404, detail="Not found") from None
    except NotAuthenticated:
        return auth.to_login(request)
    view = PatientView(session, patient, perms)  # type: ignore[arg-type]
    with frame(session, "caseload"):
        await view.build()
    return None
