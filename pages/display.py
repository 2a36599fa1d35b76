"""How values read on screen: dates, durations, measures and trend arrows.

The store's datetimes are always aware (UTC); so are a delivery's. Parse dates carry milliseconds
while stored ones carry microseconds: `instant_ms` compares both at the precision they share, and
`chart_time` formats both the same way.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nicegui import ui

from dashboard.catalogue import Catalogue, Measure
from dashboard.serialize import iso
from dashboard.store import LatestScore

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

SHORT_NAMES = {
    "barthel": "Barthel", "fim_motor": "FIM motor", "tug": "TUG", "berg": "Berg",
    "ampac_mobility": "AM-PAC", "six_minute_walk": "6MWT", "fac": "FAC", "tinetti": "Tinetti",
    "jh_hlm": "JH-HLM",
}
UNITS = {"s": " s", "m": " m"}


def short_name(score_type: str) -> str:
    return SHORT_NAMES.get(score_type, score_type.replace("_", " ").title())


def value_text(measure: Measure | None, value: float) -> str:
    if measure is None:
        return f"{value:g}"
    number = f"{int(value)}" if measure.integer else f"{value:.1f}".rstrip("0").rstrip(".")
    return number + UNITS.get(measure.unit, "")


def instant_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def chart_time(moment: datetime) -> str:
    """A chart point's time: Parse's millisecond form, the same for stored and delivered records."""
    return iso(moment)


def local(moment: datetime | None) -> datetime | None:
    return moment.astimezone() if moment is not None else None


def date_text(moment: datetime | None) -> str:
    moment = local(moment)
    return moment.strftime("%d %b %Y") if moment else "—"


def datetime_text(moment: datetime | None) -> str:
    moment = local(moment)
    return moment.strftime("%d %b %Y, %H:%M") if moment else "—"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min" if hours < 6 else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


TREND_COLOURS = {"better": "#1a7f4b", "worse": "#c0392b", "same": "#7b8794", "": "#9aa5b1"}


def trend_arrow(score: LatestScore, measure: Measure | None) -> None:
    """The arrow points the way the value moved; its colour says whether that is better, and its
    name says it in words (Quasar hides icons from assistive technology unless told otherwise)."""
    if score.previous is None:
        return
    icon = "arrow_upward" if score.value > score.previous else (
        "arrow_downward" if score.value < score.previous else "arrow_forward")
    better = measure.better if measure else "higher"
    words = {"better": "improving", "worse": "worsening", "same": "no change"}.get(score.trend, "")
    ui.icon(icon, size="16px").style(f"color:{TREND_COLOURS.get(score.trend, '#9aa5b1')}") \
        .props(f'role="img" aria-hidden="false" aria-label="{words}"').classes(f"trend-{score.trend or 'none'}") \
        .tooltip(f"{words.capitalize()} (from {score.previous:g}; {better} is better)")


def score_chip(catalogue: Catalogue, score: LatestScore, *, large: bool = False) -> None:
    measure = catalogue.measures.get(score.score_type)
    with ui.row().classes(f"score-chip items-center gap-1 no-wrap {'large' if large else ''}"):
        ui.label(short_name(score.score_type)).classes("score-name")
        ui.label(value_text(measure, score.value)).classes("score-value")
        trend_arrow(score, measure)


def ordered_scores(catalogue: Catalogue, latest: dict[str, LatestScore]) -> list[LatestScore]:
    order = list(catalogue.measures)
    return sorted(latest.values(), key=lambda s: order.index(s.score_type) if s.score_type in order else 99)
