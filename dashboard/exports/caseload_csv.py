"""The caseload as CSV: the rows a caseload page shows, in its order, one column per measure.

The rows come from the store (a viewer's carry no identifier and no last-session date, and its
names are initials unless a lead turned names on); the columns a viewer's rows cannot fill are left
out rather than sent empty. Free text (names) is made safe to open in a spreadsheet.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from dashboard.catalogue import Catalogue, Measure
from dashboard.store import CaseloadRow
from dashboard.store.audit import spreadsheet_safe  # the audit CSV's formula guard


def measure_header(measure: Measure) -> str:
    unit = f" ({measure.unit})" if measure.unit in ("s", "m") else ""
    return f"{measure.name}{unit}"


def number_text(value: float) -> str:
    return f"{value:g}"


def caseload_csv(rows: Iterable[CaseloadRow], catalogue: Catalogue, *, private_columns: bool) -> str:
    """CSV text with a header row; `private_columns` (not for a viewer) adds the hospital's
    identifier and the last session's date."""
    measures = list(catalogue.measures.values())
    statuses = catalogue.vocabulary["mobilityStatus"]
    header = ["Patient", *(["Identifier"] if private_columns else []), "Primary therapist", "Mobility status",
              *(measure_header(m) for m in measures), *(["Last session"] if private_columns else []),
              "Open follow-ups", "Equipment out"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        status = statuses[row.mobility_status].label if row.mobility_status in statuses else row.mobility_status
        latest = [number_text(row.latest[m.score_type].value) if m.score_type in row.latest else ""
                  for m in measures]
        last = row.last_session.astimezone().strftime("%Y-%m-%d") if row.last_session else ""
        writer.writerow([
            spreadsheet_safe(row.display_name),
            *([spreadsheet_safe(row.patient_number or "")] if private_columns else []),
            spreadsheet_safe(row.primary_therapist), status, *latest,
            *([last] if private_columns else []), row.open_follow_ups, row.equipment_out])
    return out.getvalue()
