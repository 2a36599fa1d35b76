"""A patient's progress report as data: what the printable page and the PDF both show, in words.

Built from the store's `PatientEverything`, which already holds only what the reader may see: a
viewer's has no notes, no identifier, no date of birth and no free-text reasons, so nothing here
filters again; a field the store left out is simply not shown. Every date is written out here once,
so the page and the PDF say the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from dashboard.catalogue import Catalogue, Measure
from dashboard.record_types import NoteRecord
from dashboard.store import PatientEverything

UNITS = {"s": " s", "m": " m"}


def day_text(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%d %b %Y") if moment else "—"


def moment_text(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%d %b %Y, %H:%M") if moment else "—"


def value_text(measure: Measure, value: float) -> str:
    number = f"{int(value)}" if measure.integer else f"{value:.1f}".rstrip("0").rstrip(".")
    return number + UNITS.get(measure.unit, "")


def better_text(measure: Measure) -> str:
    return "lower is better" if measure.better == "lower" else "higher is better"


@dataclass(frozen=True)
class ScoreLine:
    date: str
    value: str
    recorded_by: str
    comment: str  # the score's comment, or why it was entered in error (never for a viewer)
    in_error: bool


@dataclass(frozen=True)
class MeasureSection:
    score_type: str
    name: str
    better: str  # "higher" or "lower"
    better_text: str
    summary: str  # first and latest valid values, and whether that is better
    lines: list[ScoreLine]  # oldest first, entries in error included (marked)
    points: list[tuple[datetime, float]]  # the valid scores, oldest first, for the chart
    low: float  # the chart's value range: the measure's own where it has one
    high: float


@dataclass(frozen=True)
class HistoryLine:
    when: str
    what: str
    by: str
    reason: str


@dataclass(frozen=True)
class NoteEntry:
    when: str
    session_type: str
    author: str
    follow_up: bool
    text: str
    addenda: list["NoteEntry"] = field(default_factory=list)


@dataclass(frozen=True)
class EquipmentLine:
    name: str
    serial: str
    status: str
    checked_out: str
    returned: str


@dataclass(frozen=True)
class ProgressReport:
    object_id: str
    name: str
    profile: list[tuple[str, str]]  # (label, value), only what the reader may see
    history: list[HistoryLine]  # oldest first
    measures: list[MeasureSection]  # in the catalogue's order, only measures with scores
    notes: list[NoteEntry] | None  # None when the reader may not read notes (then no section at all)
    equipment: list[EquipmentLine]
    generated: str

    @property
    def file_name(self) -> str:
        """The PDF's name: the opaque object id only (never a name or identifier)."""
        return f"progress-report-{self.object_id}.pdf"


def _summary(measure: Measure, points: list[tuple[datetime, float]]) -> str:
    if not points:
        return "No valid scores."
    first, latest = points[0][1], points[-1][1]
    if len(points) == 1:
        return f"One score: {value_text(measure, latest)}."
    trend = measure.trend(latest, first)
    words = {"better": "better", "worse": "worse", "same": "no change"}[trend]
    return (f"{len(points)} scores: {value_text(measure, first)} first, {value_text(measure, latest)} latest "
            f"({words}; {better_text(measure)}).")


def _range(measure: Measure, values: list[float]) -> tuple[float, float]:
    """The whole scale where the measure has one, so a small change looks small; from 0 to a
    little above the largest value where it has no maximum (TUG seconds, walk metres)."""
    low = measure.min if measure.min is not None else 0.0
    high = measure.max if measure.max is not None else math.ceil(max([*values, low + 1]) * 1.15)
    return float(low), float(high if high > low else low + 1)


def build_report(everything: PatientEverything, catalogue: Catalogue, *, reads_notes: bool,
                 now: datetime, reader: str) -> ProgressReport:
    p = everything.patient
    users = {uid: u.username for uid, u in everything.users.items()}

    def who(user_id: str | None) -> str:
        return users.get(user_id or "", "someone")

    mobility = catalogue.vocabulary["mobilityStatus"]
    kit = catalogue.vocabulary["equipmentStatus"]
    sessions = catalogue.vocabulary["sessionType"]
    profile = [("Name", p.display_name)]
    if p.patient_id:
        profile.append(("Identifier", p.patient_id))
    if p.date_of_birth:
        profile.append(("Date of birth", day_text(p.date_of_birth)))
    profile += [("Primary therapist", who(p.primary_therapist_id)),
                ("Mobility status", mobility[p.mobility_status].label if p.mobility_status in mobility
                 else p.mobility_status)]
    if p.bed:
        profile.append(("Bed", p.bed))

    names = {e.id: e.equipment_name for e in everything.equipment}
    history = []
    for h in sorted(everything.history, key=lambda h: (h.created_at, h.sequence)):
        vocab = mobility if h.status_type == "mobilityStatus" else kit
        to = vocab[h.to_value].label if h.to_value in vocab else h.to_value
        if h.status_type == "mobilityStatus":
            what = f"{vocab[h.from_value].label} → {to}" if h.from_value in vocab else f"Admitted: {to}"
        else:
            what = f"{names.get(h.equipment_log_id or '', 'Equipment')}: {to.lower()}"
        history.append(HistoryLine(moment_text(h.created_at), what, who(h.changed_by_id), h.change_reason or ""))

    measures = []
    for score_type, measure in catalogue.measures.items():
        scores = [s for s in everything.scores if s.score_type == score_type]
        if not scores:
            continue
        scores.sort(key=lambda s: (s.score_date, s.created_at))
        points = [(s.score_date, s.score_value) for s in scores if not s.entered_in_error]
        lines = [ScoreLine(day_text(s.score_date), value_text(measure, s.score_value), who(s.recorded_by_id),
                           (f"Entered in error: {s.error_reason or ''}".strip() if s.entered_in_error
                            else s.notes or ""), s.entered_in_error) for s in scores]
        low, high = _range(measure, [v for _, v in points])
        measures.append(MeasureSection(score_type, measure.name, measure.better, better_text(measure),
                                       _summary(measure, points), lines, points, low, high))

    notes: list[NoteEntry] | None = None
    if reads_notes:
        def entry(n: NoteRecord, addenda: list[NoteEntry]) -> NoteEntry:
            kind = sessions[n.session_type].label if n.session_type in sessions else n.session_type
            return NoteEntry(moment_text(n.session_date if not n.amends_id else n.created_at), kind,
                             who(n.author_id), n.follow_up_needed, n.note_text or "", addenda)

        ids = {n.id for n in everything.notes}
        ordered = sorted(everything.notes, key=lambda n: (n.session_date, n.created_at))
        notes = [entry(n, [entry(a, []) for a in sorted((a for a in everything.notes if a.amends_id == n.id),
                                                         key=lambda a: a.created_at)])
                 for n in ordered if not n.amends_id or n.amends_id not in ids]

    equipment = [EquipmentLine(e.equipment_name, e.serial_number or "",
                               kit[e.status].label if e.status in kit else e.status,
                               moment_text(e.checked_out_at), moment_text(e.returned_at) if e.returned_at else "")
                 for e in sorted(everything.equipment, key=lambda e: (e.checked_out_at or e.created_at, e.id))]
    return ProgressReport(p.id, p.display_name, profile, history, measures, notes, equipment,
                          f"Prepared {moment_text(now)} by {reader}")
