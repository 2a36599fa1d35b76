"""The progress report as a PDF (fpdf2): profile, status history, each measure's table and line
chart with its better direction, session notes with addenda, equipment.

A Unicode TrueType font is used where the system has one (DejaVu or Liberation, as Debian ships
them); without one, fpdf2's core Helvetica, whose Latin-1 cannot hold every name, so characters
outside it become "?" rather than failing the report. The document's title is generic: a PDF
viewer shows it in its tab, and a title is never the place for a patient's name.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from dashboard.exports.progress_report import MeasureSection, ProgressReport

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
FONT_FILES = {"DejaVu": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
              "Liberation": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf")}
INK, MUTED, BRAND, LINE = (16, 42, 67), (98, 125, 152), (11, 85, 99), (210, 218, 226)
CHART_H = 42.0  # mm


def _unicode_font() -> tuple[str, Path, Path] | None:
    for family, (regular, bold) in FONT_FILES.items():
        for folder in FONT_DIRS:
            if (folder / regular).is_file() and (folder / bold).is_file():
                return family, folder / regular, folder / bold
    return None


class ReportPdf(FPDF):
    def __init__(self, report: ProgressReport) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.report = report
        found = _unicode_font()
        self.unicode = found is not None
        if found is not None:
            family, regular, bold = found
            self.add_font(family, "", str(regular))
            self.add_font(family, "B", str(bold))
            self.family_name = family
        else:
            self.family_name = "helvetica"
        self.set_title("OT Tracker progress report")
        self.set_creator("OT Tracker")
        self.set_auto_page_break(True, margin=16)
        self.set_margins(15, 15, 15)

    def t(self, text: str) -> str:
        """Text the font can draw (core fonts hold Latin-1 only)."""
        if self.unicode:
            return text
        text = text.replace("→", "->").replace("—", "-").replace("·", "-").replace("’", "'")
        return text.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False, colour: tuple[int, int, int] = INK) -> None:
        self.set_font(self.family_name, "B" if bold else "", size)
        self.set_text_color(*colour)

    def footer(self) -> None:
        self.set_y(-12)
        self.font(8, colour=MUTED)
        self.cell(0, 5, self.t(f"{self.report.generated} · page {self.page_no()} of {{nb}}"), align="C")

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 40:
            self.add_page()
        self.ln(3)
        self.font(13, bold=True, colour=BRAND)
        self.cell(0, 8, self.t(text), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(*LINE)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(2)

    def paragraph(self, text: str, size: float = 10, colour: tuple[int, int, int] = INK,
                  bold: bool = False, indent: float = 0) -> None:
        self.font(size, bold, colour)
        self.set_x(self.l_margin + indent)
        self.multi_cell(self.epw - indent, size * 0.5, self.t(text), new_x="LMARGIN", new_y="NEXT")

    def grid(self, header: list[str], rows: list[list[str]], widths: tuple[float, ...]) -> None:
        self.font(9)
        with self.table(col_widths=widths, headings_style=FontFace(emphasis="BOLD", color=BRAND),
                        line_height=5, text_align="LEFT", borders_layout="HORIZONTAL_LINES") as table:
            table.row([self.t(h) for h in header])
            for values in rows:
                table.row([self.t(v) for v in values])
        self.ln(2)

    def chart(self, section: MeasureSection) -> None:
        """The valid scores over time; for a lower-is-better measure the axis is turned over, so
        up always means improving, and the caption says which way is better."""
        if self.get_y() + CHART_H + 12 > self.h - self.b_margin:
            self.add_page()
        left, top, width, height = self.l_margin + 12, self.get_y() + 2, self.epw - 14, CHART_H
        low, high = section.low, section.high
        lower = section.better == "lower"
        self.set_draw_color(*LINE)
        self.set_line_width(0.2)
        self.rect(left, top, width, height)
        self.font(7, colour=MUTED)
        for value, y in ((high, top), (low, top + height)) if not lower else ((low, top), (high, top + height)):
            self.set_xy(self.l_margin, y - 2)
            self.cell(11, 4, f"{value:g}", align="R")
        points = section.points
        if points:
            start, end = points[0][0], points[-1][0]
            span = (end - start).total_seconds() or 1.0

            def xy(at: datetime, value: float) -> tuple[float, float]:
                x = left + width / 2 if len(points) == 1 else left + (at - start).total_seconds() / span * width
                share = (min(max(value, low), high) - low) / (high - low)
                return x, top + (share if lower else 1 - share) * height

            coords = [xy(at, value) for at, value in points]
            self.set_draw_color(*BRAND)
            self.set_line_width(0.6)
            if len(coords) > 1:
                self.polyline(coords)
            self.set_fill_color(*BRAND)
            for x, y in coords:
                self.rect(x - 0.8, y - 0.8, 1.6, 1.6, style="F")
            self.set_fill_color(255, 255, 255)  # tables fill their cells with the current colour
            self.set_xy(left, top + height + 0.5)
            self.cell(width / 2, 4, start.astimezone().strftime("%d %b %Y"))
            self.cell(width / 2, 4, end.astimezone().strftime("%d %b %Y"), align="R")
        self.set_xy(left, top + height + 4.5)
        self.font(8, colour=MUTED)
        arrow = "↓" if lower else "↑"
        caption = f"{section.better_text.capitalize()}" + (" (axis turned over: up is improving)" if lower else "")
        self.cell(width, 4, self.t(f"{arrow} {caption}" if self.unicode else caption), new_x="LMARGIN", new_y="NEXT")
        self.set_line_width(0.2)
        self.ln(3)


def report_pdf(report: ProgressReport) -> bytes:
    pdf = ReportPdf(report)
    pdf.add_page()
    pdf.font(18, bold=True)
    pdf.cell(0, 10, pdf.t(report.name), new_x="LMARGIN", new_y="NEXT")
    pdf.paragraph("Progress report", 11, MUTED)
    pdf.ln(2)
    for label, value in report.profile:
        pdf.font(10, bold=True, colour=MUTED)
        pdf.cell(40, 6, pdf.t(label))
        pdf.font(10)
        pdf.cell(0, 6, pdf.t(value), new_x="LMARGIN", new_y="NEXT")

    pdf.heading("Status history")
    if report.history:
        pdf.grid(["When", "Change", "By", "Reason"], [[h.when, h.what, h.by, h.reason] for h in report.history],
                 (32, 55, 28, 65))
    else:
        pdf.paragraph("No changes yet.", colour=MUTED)

    pdf.heading("Mobility scores")
    if not report.measures:
        pdf.paragraph("No scores recorded yet.", colour=MUTED)
    for section in report.measures:
        pdf.paragraph(section.name, 11, bold=True)
        pdf.paragraph(section.summary, 9, MUTED)
        pdf.chart(section)
        pdf.grid(["Date", "Value", "Recorded by", "Comment"],
                 [[line.date, line.value + (" (in error)" if line.in_error else ""), line.recorded_by, line.comment]
                  for line in section.lines], (28, 30, 35, 87))

    if report.notes is not None:
        pdf.heading("Session notes")
        if not report.notes:
            pdf.paragraph("No session notes yet.", colour=MUTED)
        for note in report.notes:
            flag = " · follow-up needed" if note.follow_up else ""
            pdf.paragraph(f"{note.when} · {note.session_type} · {note.author}{flag}", 9, MUTED, bold=True)
            pdf.paragraph(note.text)
            for extra in note.addenda:
                pdf.paragraph(f"Addendum · {extra.when} · {extra.author}", 8.5, MUTED, bold=True, indent=6)
                pdf.paragraph(extra.text, 9.5, indent=6)
            pdf.ln(2)

    pdf.heading("Equipment")
    if report.equipment:
        pdf.grid(["Item", "Serial", "Status", "Checked out", "Returned"],
                 [[e.name, e.serial, e.status, e.checked_out, e.returned] for e in report.equipment],
                 (50, 30, 28, 36, 36))
    else:
        pdf.paragraph("No equipment logged.", colour=MUTED)
    return bytes(pdf.output())
