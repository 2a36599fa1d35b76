"""One patient: profile, status, scores, session notes, equipment, status history and care team.

Addressed by the opaque objectId only. Every section re-reads through the store as the page's
principal when the hub says that part changed; when access ends the data is replaced by a notice.
"""
from __future__ import annotations

import bisect
from datetime import datetime, timezone

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.access import LEAD, VIEWER
from dashboard.errors import Conflict, InvalidInput, NotFound, StoreError
from dashboard.hub import Delivery, patient_topic
from dashboard.models import EquipmentLog, MobilityScore, Patient, SessionNote, StatusHistory
from pages import auth, delivered, live, presence
from pages.display import ago, date_text, datetime_text, short_name, value_text
from pages.frame import PAGE_BUILD_TIMEOUT, ROLE_LABELS, frame, section, status_badge
from pages.score_list import Row, ScoreList, row_json

router = APIRouter()
SCORE_ROWS = 8
SCORE_LOAD_LIMIT = 1000  # the store's most per find
NOTE_PAGE = 10
# Rows (and their JSON) by (score object, recorder's name, markable): the pages of one push share them.
ROW_CACHE = 256
_rows: dict[tuple[int, str, bool], tuple[MobilityScore, Row, str]] = {}

CSS = """
.pt-grid { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr); gap: 18px; width: 100%; align-items: start; }
.pt-col { display: flex; flex-direction: column; gap: 18px; min-width: 0; }
@media (max-width: 1023px) { .pt-grid { grid-template-columns: minmax(0, 1fr); } }
.pt-name { font-size: 1.6rem; font-weight: 700; letter-spacing: -.01em; }
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
.pt-addendum { margin-left: 18px; border-left: 3px solid #cbd5e1; padding: 6px 0 6px 12px; width: calc(100% - 18px); }
.pt-presence { background: #eef6f7; border-radius: 999px; padding: 4px 12px; color: #0b5563; font-size: .85rem; }
.q-timeline__title { font-size: 1rem; font-weight: 600; margin-bottom: 2px; }
.q-timeline__subtitle { font-size: .75rem; }
.q-timeline__content { padding-bottom: 14px; }
.pt-notice { max-width: 640px; margin: 40px auto; text-align: center; }
"""


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


class PatientView:
    def __init__(self, session: auth.PageSession, patient: Patient):
        self.session = session
        self.store = session.store
        self.catalogue = self.store.catalogue
        self.patient = patient
        self.pid = patient.id
        self.users: dict[str, str] = {}
        self.scores: list[MobilityScore] = []
        self.score_keys: list[int] = []  # -instant_ms(score_date) of each score: ascending, for bisect
        self.score_ids: set[str] = set()
        self.notes: list[SessionNote] = []
        self.equipment: list[EquipmentLog] = []
        self.history: list[StatusHistory] = []
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

    # -- who may do what (the store decides; this only hides controls that would be refused) -----
    @property
    def role(self) -> str:
        return self.store.access.role(self.session.principal) or VIEWER

    @property
    def can_record(self) -> bool:
        return self.role in (LEAD, "therapist", "contributor")

    @property
    def can_manage(self) -> bool:
        return self.role == LEAD or self.store.access.owns(self.session.principal, self.pid)

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

    def set_scores(self, scores: list[MobilityScore]) -> None:
        self.scores = scores
        self.score_keys = [-delivered.instant_ms(s.score_date) for s in scores]
        self.score_ids = {s.id for s in scores}

    async def load_notes(self) -> None:
        self.notes = await self._find("SessionNote", "-sessionDate,-createdAt", 1000) if self.role != VIEWER else []

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
        ui.add_css(CSS)
        # Dialogs live outside the sections, so a live refresh never closes one mid-edit.
        self.dialog_host = ui.element("div")
        self.root = ui.column().classes("w-full gap-4")
        self.render_all()
        self.sub = live.watch(self.session, [patient_topic(self.pid)], self.on_batch, at_once=self.at_once)
        live.on_team_change(self.pid, self.refresh_team)
        me = presence.Viewer(ui.context.client.id, self.session.principal.user_id, self.session.username,
                             self.session.role)
        presence.join(self.pid, me, self.render_presence)

    def render_all(self) -> None:
        self.root.clear()
        with self.root:
            self.header = ui.column().classes("ot-card gap-2")
            with ui.element("div").classes("pt-grid"):
                with ui.element("div").classes("pt-col"):
                    self.scores_card = section("Mobility scores", "insights").mark("scores")
                    self.equipment_card = section("Equipment", "medical_services").mark("equipment")
                with ui.element("div").classes("pt-col"):
                    if self.role != VIEWER:
                        self.notes_card = section("Session notes", "description").mark("notes")
                    self.history_card = section("Status history", "timeline").mark("history")
                    self.team_card = section("Care team", "group").mark("care-team")
        self.render_header()
        self.render_scores()
        self.render_equipment()
        if self.role != VIEWER:
            self.render_notes()
        self.render_history()
        ui.timer(0, self.refresh_team, once=True)

    def _body(self, card: ui.column) -> ui.column:
        """Everything in a section card after its title row."""
        for child in list(card.default_slot.children)[1:]:
            card.remove(child)
        return card

    # -- header -----------------------------------------------------------------------------------
    def render_header(self) -> None:
        p = self.patient
        viewer = self.role == VIEWER
        # The store already gives a viewer initials unless a lead turned names on.
        name = p.display_name
        self.header.clear()
        with self.header:
            with ui.row().classes("w-full items-start justify-between gap-3"):
                with ui.column().classes("gap-1"):
                    with ui.row().classes("items-center gap-2"):
                        with ui.link(target="/").props('aria-label="Back to caseload"') \
                                .style("text-decoration:none"):
                            ui.icon("arrow_back", size="22px").classes("ot-muted")
                        ui.label(name).classes("pt-name").mark("patient-name")
                    meta = []
                    if not viewer:
                        meta.append(p.patient_id)
                        if p.date_of_birth:
                            meta.append(f"Born {date_text(p.date_of_birth)}")
                    meta.append(f"Therapist: {self.name_of(p.primary_therapist_id)}")
                    ui.label(" · ".join(meta)).classes("pt-meta")
                with ui.row().classes("items-center gap-3 pt-status"):
                    status_badge(self.catalogue, p.mobility_status).mark("status-badge").props("data-testid=status-badge")
                    if self.can_manage:
                        ui.button("Change status", icon="swap_vert", on_click=self.open_status_dialog) \
                            .props("outline color=primary").mark("change-status").props("data-testid=change-status")
            self.presence_row = ui.row().classes("items-center gap-2")
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

    def open_status_dialog(self) -> None:
        opened_version = self.patient.version
        statuses = {k: t.label for k, t in self.catalogue.vocabulary["mobilityStatus"].items()}
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("gap-3").style("min-width: min(520px, 92vw)"):
            ui.label("Change mobility status").classes("text-lg font-semibold")
            current = ui.label(f"Current: {statuses.get(self.patient.mobility_status, '')}").classes("ot-muted")
            conflict = ui.column().classes("w-full")
            choice = ui.select(statuses, label="New status", value=self.patient.mobility_status) \
                .props("outlined").classes("w-full").mark("status-select").props("data-testid=status-select")
            reason = ui.textarea("Reason (required)").props("outlined autogrow maxlength=2000") \
                .classes("w-full").mark("status-reason").props("data-testid=status-reason")

            async def save() -> None:
                nonlocal opened_version
                if not (reason.value or "").strip():
                    reason.props("error error-message='A reason is required'")
                    return
                reason.props(remove="error error-message")
                try:
                    await self.store.change_status(principal=self.session.principal, patient_id=self.pid,
                                                   status=choice.value, reason=reason.value.strip(),
                                                   expected_version=opened_version)
                except Conflict as exc:
                    opened_version = exc.current_version
                    now = statuses.get(str(exc.current), str(exc.current))
                    current.text = f"Current: {now}"
                    conflict.clear()
                    with conflict, ui.row().classes("w-full items-start gap-2 p-3 rounded-lg no-wrap").style(
                            "background:#fff4e5;color:#7a4a00").mark("status-conflict"):
                        ui.icon("warning", size="20px")
                        ui.label(f"Someone else changed the status to {now} while this dialog was open. "
                                 "Nothing was saved. Review the current status and save again if your "
                                 "change is still right.")
                    return
                except StoreError as exc:
                    ui.notify(exc.message, type="negative")
                    return
                dialog.close()
                ui.notify("Status changed", type="positive")

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Save status", icon="check", on_click=save).props("unelevated color=primary") \
                    .mark("status-save").props("data-testid=status-save")
        dialog.open()

    # -- scores -----------------------------------------------------------------------------------
    def render_scores(self) -> None:
        card = self._body(self.scores_card)
        self.charts = {}
        self.scores_empty = None
        with card:
            if self.can_record:
                self.score_form()
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
        score = delivered.shared_row("MobilityScore", delivery.data)
        if not isinstance(score, MobilityScore) or delivery.kind not in ("create", "update"):
            return False
        if score.score_type not in self.catalogue.measures or score.recorded_by_id not in self.users:
            return False  # a new measure or a new colleague: the page's lookups are stale
        key = -delivered.instant_ms(score.score_date)
        if delivery.kind == "create":
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
                at = delivered.chart_time(score.score_date)
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

    def score_form(self) -> None:
        measures = self.catalogue.measures
        options = {k: f"{m.name} — {m.range_text}" for k, m in measures.items()}
        with ui.row().classes("w-full items-start gap-2"):
            picker = ui.select(options, label="Measure", value="barthel").props("outlined") \
                .classes("grow").style("min-width: 240px").mark("score-measure")

            def check(value: float | None) -> str | None:
                if value is None:
                    return "Enter a value"
                try:
                    measures[picker.value].validate(float(value) if not measures[picker.value].integer
                                                    or float(value) != int(value) else int(value))
                except InvalidInput as exc:
                    return exc.rule
                return None

            value = ui.number("Value", validation=check).props("outlined inputmode=decimal") \
                .style("width: 150px").mark("score-value").props("data-testid=score-value")
            picker.on_value_change(lambda: value.validate())

            async def save() -> None:
                if value.value is None or not value.validate():
                    return
                raw = float(value.value)
                try:
                    await self.store.record_score(principal=self.session.principal, patient_id=self.pid,
                                                  score_type=picker.value,
                                                  value=int(raw) if raw.is_integer() else raw)
                except StoreError as exc:
                    ui.notify(exc.message, type="negative")
                    return
                value.value = None
                ui.notify(f"{short_name(picker.value)} score saved", type="positive")

            ui.button("Save score", icon="add", on_click=save).props("unelevated color=primary") \
                .style("height: 56px").mark("score-save").props("data-testid=score-save")
        ui.label().bind_text_from(picker, "value", lambda k: f"Valid: {measures[k].range_text}; "
                                  f"{measures[k].better} is better" if k in measures else "") \
            .classes("ot-muted text-sm -mt-2")

    @staticmethod
    def chart_points(scores: list[MobilityScore]) -> list[list]:
        points = sorted(((_aware(s.score_date), s.score_value) for s in scores), key=lambda x: x[0])
        return [[delivered.chart_time(at), value] for at, value in points]

    def chart(self, score_type: str, scores: list[MobilityScore]) -> ui.echart:
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

    def score_row(self, score: MobilityScore) -> tuple[Row, str]:
        """The row a score shows on this page, and its JSON (shared by the pages that show the same)."""
        may_mark = not score.entered_in_error and self.can_record and (
            self.role == LEAD or score.recorded_by_id == self.session.principal.user_id)
        recorder = self.name_of(score.recorded_by_id)
        key = (id(score), recorder, may_mark)
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
               "markable": may_mark}
        if len(_rows) >= ROW_CACHE:
            _rows.clear()
        _rows[key] = (score, row, row_json(row))
        return row, _rows[key][2]

    def mark_error_of(self, score_id: str) -> None:
        """The list's mark button: only for a row this page shows as markable."""
        score = next((s for s in self.scores if s.id == score_id), None)
        if score is not None and any(r["id"] == score_id and r["markable"] for r in self.score_list.rows):
            self.mark_error(score)

    def mark_error(self, score: MobilityScore) -> None:
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("gap-3").style("min-width: min(460px, 92vw)"):
            ui.label("Mark score entered in error").classes("text-lg font-semibold")
            ui.label("The score stays in the record, struck through, with your reason.").classes("ot-muted")
            reason = ui.input("Reason (required)").props("outlined maxlength=2000").classes("w-full") \
                .mark("error-reason")

            async def save() -> None:
                if not (reason.value or "").strip():
                    reason.props("error error-message='A reason is required'")
                    return
                try:
                    await self.store.mark_score_in_error(principal=self.session.principal, score_id=score.id,
                                                         reason=reason.value.strip())
                except StoreError as exc:
                    ui.notify(exc.message, type="negative")
                    return
                dialog.close()

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Mark in error", on_click=save).props("unelevated color=negative").mark("error-save")
        dialog.open()

    # -- notes ------------------------------------------------------------------------------------
    def render_notes(self) -> None:
        card = self._body(self.notes_card)
        with card:
            if self.can_record:
                self.note_form()
            roots = [n for n in self.notes if not n.amends_id]
            addenda: dict[str, list[SessionNote]] = {}
            for n in self.notes:
                if n.amends_id:
                    addenda.setdefault(n.amends_id, []).append(n)
            known = {n.id for n in roots}
            # An addendum whose note is beyond what was loaded still shows, as its own entry.
            roots += [n for n in self.notes if n.amends_id and n.amends_id not in {x.id for x in self.notes}]
            del known
            with ui.column().classes("w-full gap-2").mark("note-feed"):
                for note in roots[: self.note_limit]:
                    self.note_entry(note, sorted(addenda.get(note.id, []), key=lambda n: _aware(n.created_at)))
                if not roots:
                    ui.label("No session notes yet.").classes("ot-empty w-full")
            if len(roots) > self.note_limit:
                ui.button(f"Show older notes ({len(roots) - self.note_limit})", on_click=self.more_notes) \
                    .props("flat color=primary")

    def more_notes(self) -> None:
        self.note_limit += NOTE_PAGE
        self.render_notes()

    def note_form(self, amends: SessionNote | None = None, dialog: ui.dialog | None = None) -> None:
        types = {k: t.label for k, t in self.catalogue.vocabulary["sessionType"].items()}
        with ui.column().classes("w-full gap-2"):
            with ui.row().classes("w-full gap-2 items-center"):
                kind = ui.select(types, label="Session type", value=amends.session_type if amends else "treatment") \
                    .props("outlined").classes("grow").mark("note-type")
                follow = ui.checkbox("Follow-up needed").mark("note-follow-up")
            text = ui.textarea("Addendum" if amends else "Session note").props(
                "outlined autogrow maxlength=10000").classes("w-full").mark("note-text")

            async def save() -> None:
                if not (text.value or "").strip():
                    text.props("error error-message='Write the note first'")
                    return
                text.props(remove="error error-message")
                try:
                    await self.store.add_note(principal=self.session.principal, patient_id=self.pid,
                                              session_type=kind.value, text=text.value.strip(),
                                              follow_up=bool(follow.value), amends=amends.id if amends else None)
                except StoreError as exc:
                    ui.notify(exc.message, type="negative")
                    return
                text.value = ""
                follow.value = False
                if dialog is not None:
                    dialog.close()
                ui.notify("Addendum saved" if amends else "Note saved", type="positive")

            with ui.row().classes("w-full justify-end"):
                ui.button("Save addendum" if amends else "Save note", icon="save", on_click=save) \
                    .props("unelevated color=primary").mark("note-save")

    def note_entry(self, note: SessionNote, addenda: list[SessionNote]) -> None:
        types = self.catalogue.vocabulary["sessionType"]
        with ui.column().classes("pt-note gap-1").mark(f"note-{note.id}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.badge(types[note.session_type].label if note.session_type in types else note.session_type,
                         color="blue-grey-1", text_color="blue-grey-9").props("rounded")
                ui.label(f"{datetime_text(note.session_date)} · {self.name_of(note.author_id)}") \
                    .classes("text-sm ot-muted")
                ui.space()
                if note.follow_up_needed:
                    ui.badge("Follow-up", color="orange-2", text_color="orange-10").props("rounded") \
                        .mark("follow-up-flag")
                    if self.can_record:
                        ui.button("Clear", icon="done", on_click=lambda n=note: self.clear_follow_up(n)) \
                            .props("flat dense color=primary").mark("clear-follow-up")
            ui.label(note.note_text).classes("pt-note-text")  # text, never HTML
            for extra in addenda:
                with ui.column().classes("pt-addendum gap-0").mark(f"addendum-{extra.id}"):
                    ui.label(f"Addendum · {datetime_text(extra.created_at)} · {self.name_of(extra.author_id)}") \
                        .classes("text-xs ot-muted")
                    ui.label(extra.note_text).classes("pt-note-text")
            if self.can_record:
                ui.button("Add addendum", icon="edit_note", on_click=lambda n=note: self.addendum(n)) \
                    .props("flat dense color=primary").classes("self-start")

    def addendum(self, note: SessionNote) -> None:
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("gap-3").style("min-width: min(560px, 92vw)"):
            ui.label("Add an addendum").classes("text-lg font-semibold")
            ui.label("Notes are never edited; an addendum is kept under the note it corrects.").classes("ot-muted")
            self.note_form(amends=note, dialog=dialog)
        dialog.open()

    async def clear_follow_up(self, note: SessionNote) -> None:
        try:
            await self.store.clear_follow_up(principal=self.session.principal, note_id=note.id)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")

    # -- equipment --------------------------------------------------------------------------------
    def render_equipment(self) -> None:
        card = self._body(self.equipment_card)
        statuses = self.catalogue.vocabulary["equipmentStatus"]
        out = [e for e in self.equipment if e.status != "returned"]
        back = [e for e in self.equipment if e.status == "returned"][:5]
        with card:
            if self.can_record:
                with ui.row().classes("w-full items-start gap-2"):
                    name = ui.input("Equipment").props("outlined maxlength=200").classes("grow") \
                        .mark("equipment-name")
                    serial = ui.input("Serial number (optional)").props("outlined maxlength=100") \
                        .style("width: 190px").mark("equipment-serial")

                    async def check_out() -> None:
                        if not (name.value or "").strip():
                            name.props("error error-message='Name the equipment'")
                            return
                        name.props(remove="error error-message")
                        try:
                            await self.store.check_out_equipment(
                                principal=self.session.principal, patient_id=self.pid, name=name.value.strip(),
                                serial_number=(serial.value or "").strip() or None)
                        except StoreError as exc:
                            ui.notify(exc.message, type="negative")
                            return
                        name.value = serial.value = ""
                        ui.notify("Checked out", type="positive")

                    ui.button("Check out", icon="output", on_click=check_out).props("unelevated color=primary") \
                        .style("height: 56px").mark("equipment-check-out")
            ui.label("Out now").classes("text-sm font-semibold ot-muted")
            with ui.column().classes("w-full gap-0").mark("equipment-out"):
                for log in out:
                    with ui.row().classes("pt-list-row w-full").style("grid-template-columns: 1fr 120px 110px"):
                        with ui.column().classes("gap-0"):
                            ui.label(log.equipment_name).classes("font-medium")
                            ui.label(" · ".join(x for x in (log.serial_number, f"out {ago(_aware(log.checked_out_at))}")
                                                if x)).classes("text-xs ot-muted")
                        ui.badge(statuses[log.status].label if log.status in statuses else log.status,
                                 color="teal-1" if log.status == "checked_out" else "orange-2",
                                 text_color="teal-10" if log.status == "checked_out" else "orange-10").props("rounded")
                        if self.can_record:
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

    async def return_item(self, log: EquipmentLog) -> None:
        try:
            await self.store.return_equipment(principal=self.session.principal, log_id=log.id)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify("Returned", type="positive")

    # -- history ----------------------------------------------------------------------------------
    def render_history(self) -> None:
        card = self._body(self.history_card)
        mobility = self.catalogue.vocabulary["mobilityStatus"]
        kit = self.catalogue.vocabulary["equipmentStatus"]
        names = {e.id: e.equipment_name for e in self.equipment}
        with card:
            if not self.history:
                ui.label("No changes yet.").classes("ot-muted")
                return
            with ui.timeline(side="right", color="primary").classes("w-full").mark("timeline"):
                for h in self.history[:40]:
                    vocab = mobility if h.status_type == "mobilityStatus" else kit
                    to = vocab[h.to_value].label if h.to_value in vocab else h.to_value
                    if h.status_type == "mobilityStatus":
                        title = f"{vocab[h.from_value].label} → {to}" if h.from_value in vocab else f"Admitted: {to}"
                    else:
                        title = f"{names.get(h.equipment_log_id or '', 'Equipment')}: {to.lower()}"
                    ui.timeline_entry(h.change_reason or "", title=title,
                                      subtitle=f"{datetime_text(h.created_at)} · {self.name_of(h.changed_by_id)}",
                                      icon="accessibility_new" if h.status_type == "mobilityStatus"
                                      else "medical_services")

    # -- care team --------------------------------------------------------------------------------
    async def refresh_team(self) -> None:
        if self.ended:
            return
        try:
            team = await self.store.care_team(principal=self.session.principal, patient_id=self.pid)
        except NotFound:
            await self.show_ended()
            return
        card = self._body(self.team_card)
        member_ids = {u.id for u, _ in team}
        with card:
            with ui.column().classes("w-full gap-0").mark("team-list"):
                therapist = self.patient.primary_therapist_id
                with ui.row().classes("pt-list-row w-full").style("grid-template-columns: 1fr auto"):
                    ui.label(f"{self.name_of(therapist)}").classes("font-medium")
                    ui.label("Primary therapist").classes("text-xs ot-muted")
                for user, granted in team:
                    with ui.row().classes("pt-list-row w-full items-center").style(
                            "grid-template-columns: 1fr auto 44px"):
                        with ui.column().classes("gap-0"):
                            ui.label(user.username).classes("font-medium")
                            ui.label(f"since {date_text(granted)}").classes("text-xs ot-muted")
                        ui.label(ROLE_LABELS.get(user.role, user.role)).classes("text-xs ot-muted")
                        if self.can_manage:
                            ui.button(icon="person_remove", on_click=lambda u=user: self.remove_member(u.id)) \
                                .props(f'flat round color=grey-7 aria-label="Remove {user.username}"') \
                                .mark(f"remove-{user.username}")
                        else:
                            ui.element("span")
            if self.can_manage:
                users = await self.store.list_users(principal=self.session.principal)
                options = {u.id: f"{u.username} ({ROLE_LABELS.get(u.role, u.role)})" for u in users
                           if u.id not in member_ids and u.id != therapist and u.role != LEAD
                           and u.active is not False}
                with ui.row().classes("w-full items-center gap-2"):
                    pick = ui.select(options, label="Add to care team", with_input=True).props("outlined") \
                        .classes("grow").mark("team-add-select")

                    async def add() -> None:
                        if not pick.value:
                            return
                        try:
                            await self.store.add_care_team_member(principal=self.session.principal,
                                                                  patient_id=self.pid, user_id=pick.value)
                        except StoreError as exc:
                            ui.notify(exc.message, type="negative")
                            return
                        live.team_changed(self.pid)

                    ui.button("Add", icon="person_add", on_click=add).props("unelevated color=primary") \
                        .style("height: 56px").mark("team-add")

    async def remove_member(self, user_id: str) -> None:
        try:
            await self.store.remove_care_team_member(principal=self.session.principal, patient_id=self.pid,
                                                     user_id=user_id)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")
            return
        live.team_changed(self.pid)

    # -- live -------------------------------------------------------------------------------------
    def at_once(self, delivery: Delivery) -> bool:
        """A pushed score is applied in the publishing step; anything else goes to on_batch."""
        return (not self.ended and delivery.class_name == "MobilityScore" and delivery.kind in ("create", "update")
                and self.apply_score(delivery))

    async def on_batch(self, batch: live.Batch) -> None:
        if self.ended:
            return
        if any(d.kind == "access_ended" and d.patient_id in (self.pid, None) for d in batch):
            await self.show_ended()
            return
        if any(d.kind == "resync" for d in batch):
            try:
                await self.load_patient()
            except NotFound:
                await self.show_ended()
                return
            await self.load_all()
            self.render_all()
            return
        classes = {d.class_name for d in batch}
        if "Patient" in classes:
            try:
                await self.load_patient()
            except NotFound:
                await self.show_ended()
                return
            await self.load_users()
            self.render_header()
            await self.refresh_team()
        if "MobilityScore" in classes:
            # Applied from the deliveries themselves: one push then costs each open page a row and a
            # chart update, not a query and a re-render. Anything not exactly applicable reloads.
            scores = [d for d in batch if d.class_name == "MobilityScore"]
            if not all(self.apply_score(d) for d in scores):
                await self.load_users()
                await self.load_scores()
                self.render_scores()
        if "SessionNote" in classes and self.role != VIEWER:
            await self.load_notes()
            self.render_notes()
        if "EquipmentLog" in classes:
            await self.load_equipment()
            self.render_equipment()
        if "StatusHistory" in classes:
            await self.load_history()
            self.render_history()

    async def show_ended(self) -> None:
        """Replaces every bit of this patient's data with a notice; nothing stale stays on screen."""
        self.ended = True
        if self.sub is not None:
            self.sub.close()
        presence.leave(self.pid, ui.context.client.id)
        self.root.clear()
        with self.root, ui.column().classes("ot-card pt-notice items-center gap-3").mark("access-ended").props("data-testid=access-ended"):
            ui.icon("lock", size="40px").classes("text-primary")
            ui.label("Your access to this patient has ended").classes("text-xl font-semibold")
            ui.label("The patient may have been reassigned, or you were removed from the care team. "
                     "The record is no longer shown here.").classes("ot-muted")
            ui.button("Back to caseload", icon="arrow_back", on_click=lambda: ui.navigate.to("/")) \
                .props("unelevated color=primary")


@router.page("/patient/{object_id}", title="Patient · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def patient_page(request: Request, object_id: str) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    try:
        patient = await session.store.get(principal=session.principal, class_name="Patient", object_id=object_id)
    except NotFound:
        # Not readable and not there answer the same way (ACCESS.md "What a denial looks like").
        raise HTTPException(status_code=404, detail="Not found") from None
    view = PatientView(session, patient)  # type: ignore[arg-type]
    with frame(session, "caseload"):
        await view.build()
    return None
