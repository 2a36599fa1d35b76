"""A patient's progress report, printable: /patient/{objectId}/report, inside the app's frame.

The same report as the PDF (pages/downloads.py): both are built by dashboard.exports.progress_report
from the store's export of the patient, read as the page's principal and audited as one export. An
unreadable patient is not found, as on the patient page. The toolbar and the frame's navigation are
hidden in print (frame.py's print styles); the charts are SVG drawn here from numbers and dates alone.
"""
from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.api.fhir import everything_url
from dashboard.errors import NotAuthenticated, NotFound
from dashboard.exports.progress_report import MeasureSection, ProgressReport, build_report
from dashboard.hub import DeliveryKind, patient_topic
from pages import auth, live
from pages.frame import PAGE_BUILD_TIMEOUT, Heading, frame, page_title, section

router = APIRouter()

CSS = """
.rp-table { display: grid; width: 100%; border-top: 1px solid var(--ot-line); }
.rp-table > div { display: contents; }
.rp-table > div > * { padding: 6px 8px; border-bottom: 1px solid var(--ot-line); font-size: .9rem; min-width: 0;
  overflow-wrap: anywhere; }
.rp-table .rp-head > * { font-size: .75rem; text-transform: uppercase; letter-spacing: .05em; font-weight: 600;
  color: var(--ot-muted); }
.rp-error .rp-value { text-decoration: line-through; color: #9aa5b1; }
.rp-profile { display: grid; grid-template-columns: 160px 1fr; gap: 4px 12px; }
.rp-note { border-left: 3px solid var(--ot-line); padding: 4px 0 4px 12px; width: 100%; break-inside: avoid; }
.rp-note-text { white-space: pre-wrap; word-break: break-word; line-height: 1.45; }
.rp-addendum { margin-left: 18px; border-left: 3px solid #cbd5e1; padding: 4px 0 4px 12px; }
.rp-chart svg { width: 100%; max-width: 640px; height: auto; }
@media print { .rp-measure { break-inside: avoid; } }
"""


def report_url(object_id: str) -> str:
    return f"/patient/{object_id}/report"


def pdf_url(object_id: str) -> str:
    return f"/patient/{object_id}/report.pdf"


async def load_report(request: Request, session: auth.PageSession, object_id: str,
                      kind: str) -> ProgressReport | RedirectResponse:
    """The report as `session` may read it; the one 404 for an unknown or unreadable patient, and
    the sign-in page for a session that ended meanwhile (the page and the PDF alike)."""
    store = session.store
    try:
        everything = await store.patient_everything(principal=session.principal, patient_id=object_id, kind=kind)
        perms = session.permissions(everything.patient.id)
    except NotFound:
        raise HTTPException(status_code=404, detail="Not found") from None  # unknown and unreadable alike
    except NotAuthenticated:
        return auth.to_login(request)
    return build_report(everything, store.catalogue, reads_notes=perms.reads_notes, now=store.clock(),
                        reader=session.username)


def chart_svg(measure: MeasureSection, width: int = 640, height: int = 160) -> str:
    """A line chart of the valid scores; a lower-is-better measure's axis is turned over so up
    always means improving. Only numbers and dates go into the markup."""
    left, top, w, h = 44, 10, width - 54, height - 34
    low, high, lower = measure.low, measure.high, measure.better == "lower"
    points = measure.points
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="chart">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#d2dae2"/>']
    top_value, bottom_value = (low, high) if lower else (high, low)
    parts.append(f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end" fill="#627d98">'
                 f'{top_value:g}</text>')
    parts.append(f'<text x="{left - 6}" y="{top + h}" font-size="11" text-anchor="end" fill="#627d98">'
                 f'{bottom_value:g}</text>')
    if points:
        start, end = points[0][0], points[-1][0]
        span = (end - start).total_seconds() or 1.0
        coords = []
        for at, value in points:
            x = left + w / 2 if len(points) == 1 else left + (at - start).total_seconds() / span * w
            share = (min(max(value, low), high) - low) / (high - low)
            coords.append((round(x, 1), round(top + (share if lower else 1 - share) * h, 1)))
        if len(coords) > 1:
            parts.append('<polyline fill="none" stroke="#127b8c" stroke-width="2.5" points="'
                         + " ".join(f"{x},{y}" for x, y in coords) + '"/>')
        parts += [f'<circle cx="{x}" cy="{y}" r="3.5" fill="#0b5563"/>' for x, y in coords]
        parts.append(f'<text x="{left}" y="{height - 8}" font-size="11" fill="#627d98">'
                     f'{start.astimezone():%d %b %Y}</text>')
        parts.append(f'<text x="{left + w}" y="{height - 8}" font-size="11" text-anchor="end" fill="#627d98">'
                     f'{end.astimezone():%d %b %Y}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(header: list[str], rows: list[list[str]], columns: str, *, marker: str = "",
          row_classes: list[str] | None = None) -> None:
    with ui.element("div").classes("rp-table").style(f"grid-template-columns: {columns}"):
        with ui.element("div").classes("rp-head"):
            for title in header:
                ui.label(title)
        for i, values in enumerate(rows):
            with ui.element("div").classes(row_classes[i] if row_classes else "").mark(marker or "rp-row"):
                for j, value in enumerate(values):
                    ui.label(value).classes("rp-value" if j == 1 else "")


class ReportView:
    """A snapshot as prepared (a report does not change under the reader), told when it is out of
    date, and emptied at once when access to the patient ends."""

    def __init__(self, session: auth.PageSession, report: ProgressReport):
        self.session = session
        self.report = report
        self.ended = False

    def build(self) -> None:
        ui.add_css(CSS)
        self.stale = ui.label("Records changed since this report was prepared: reload to include them.") \
            .classes("ot-card ot-no-print").mark("report-stale")
        self.stale.set_visibility(False)
        self.root = ui.column().classes("w-full gap-4")
        with self.root:
            self.build_report()
        self.sub = live.watch(self.session, [patient_topic(self.report.object_id)], self.on_batch)

    async def on_batch(self, batch: live.Batch) -> None:
        if self.ended:
            return
        if any(d.kind == DeliveryKind.ACCESS_ENDED and d.patient_id in (self.report.object_id, None) for d in batch):
            self.ended = True
            self.sub.close()
            self.stale.set_visibility(False)
            self.root.clear()
            with self.root, ui.column().classes("ot-card items-center gap-2").mark("access-ended"):
                ui.icon("lock", size="40px").classes("text-primary")
                Heading("Your access to this patient has ended", 1).classes("text-xl font-semibold")
                ui.label("The report is no longer shown here.").classes("ot-muted")
            return
        self.stale.set_visibility(True)

    def build_report(self) -> None:
        r = self.report
        with ui.row().classes("w-full items-center gap-2 ot-no-print").mark("report-toolbar"):
            ui.link("Back to patient", f"/patient/{r.object_id}").classes("ot-link-button")
            ui.space()
            ui.button("Print", icon="print", on_click=lambda: ui.run_javascript("window.print()")) \
                .props("outline color=primary").mark("report-print")
            ui.link("PDF", pdf_url(r.object_id)).props("download").mark("report-pdf") \
                .classes("ot-link-button")
            ui.link("Export FHIR", everything_url(r.object_id)).props("download").mark("report-fhir") \
                .classes("ot-link-button")
        with ui.column().classes("ot-card gap-2"):
            page_title(r.name).mark("report-name")
            ui.label("Progress report").classes("ot-muted")
            with ui.element("div").classes("rp-profile").mark("report-profile"):
                for label, value in r.profile:
                    ui.label(label).classes("ot-muted")
                    ui.label(value)
            ui.label(r.generated).classes("ot-muted text-sm")
        with section("Status history", "timeline").mark("report-history"):
            if r.history:
                table(["When", "Change", "By", "Reason"], [[h.when, h.what, h.by, h.reason] for h in r.history],
                      "170px minmax(160px, 1fr) 120px minmax(160px, 1.5fr)", marker="report-history-row")
            else:
                ui.label("No changes yet.").classes("ot-muted")
        with section("Mobility scores", "insights"):
            if not r.measures:
                ui.label("No scores recorded yet.").classes("ot-muted")
            for m in r.measures:
                with ui.column().classes("w-full gap-1 rp-measure").mark(f"report-measure-{m.score_type}"):
                    with ui.row().classes("w-full items-baseline gap-2"):
                        Heading(m.name, 3).classes("font-semibold")
                        ui.label(("↓ " if m.better == "lower" else "↑ ") + m.better_text).classes("ot-muted text-sm")
                    ui.label(m.summary).classes("ot-muted text-sm")
                    ui.html(chart_svg(m), sanitize=False).classes("rp-chart w-full")  # numbers and dates only
                    table(["Date", "Value", "Recorded by", "Comment"],
                          [[s.date, s.value, s.recorded_by, s.comment] for s in m.lines],
                          "120px 100px 140px minmax(160px, 1fr)", marker="report-score",
                          row_classes=["rp-error" if s.in_error else "" for s in m.lines])
        if r.notes is not None:
            with section("Session notes", "description").mark("report-notes"):
                if not r.notes:
                    ui.label("No session notes yet.").classes("ot-muted")
                for note in r.notes:
                    with ui.column().classes("rp-note gap-1").mark("report-note"):
                        flag = " · follow-up needed" if note.follow_up else ""
                        ui.label(f"{note.when} · {note.session_type} · {note.author}{flag}") \
                            .classes("text-sm ot-muted")
                        ui.label(note.text).classes("rp-note-text")  # text, never HTML
                        for extra in note.addenda:
                            with ui.column().classes("rp-addendum gap-0").mark("report-addendum"):
                                ui.label(f"Addendum · {extra.when} · {extra.author}").classes("text-xs ot-muted")
                                ui.label(extra.text).classes("rp-note-text")
        with section("Equipment", "medical_services").mark("report-equipment"):
            if r.equipment:
                table(["Item", "Serial", "Status", "Checked out", "Returned"],
                      [[e.name, e.serial, e.status, e.checked_out, e.returned] for e in r.equipment],
                      "minmax(140px, 1.4fr) 120px 120px 170px 170px", marker="report-equipment-row")
            else:
                ui.label("No equipment logged.").classes("ot-muted")


@router.page("/patient/{object_id}/report", title="Progress report · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def report_page(request: Request, object_id: str) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    report = await load_report(request, session, object_id, "report")
    if isinstance(report, RedirectResponse):
        return report
    with frame(session, "caseload"):
        ReportView(session, report).build()
    return None
