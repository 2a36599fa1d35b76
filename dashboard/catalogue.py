"""The measure catalogue and controlled vocabularies, kept as data in data/."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dashboard.config import DATA_DIR
from dashboard.errors import InvalidInput


@dataclass(frozen=True)
class Measure:
    score_type: str
    name: str
    integer: bool
    min: float | None
    max: float | None
    unit: str
    better: str  # "higher" or "lower"
    loinc: str | None = None
    min_exclusive: bool = False
    note: str | None = None
    # The catalogue's falls-risk cut-offs (MEASURES.md: Berg < 45, TUG > 12 s); None: no cut-off.
    fall_risk_below: float | None = None
    fall_risk_above: float | None = None

    def falls_risk(self, value: float) -> bool:
        """Whether a latest value is past this measure's falls-risk cut-off."""
        return ((self.fall_risk_below is not None and value < self.fall_risk_below)
                or (self.fall_risk_above is not None and value > self.fall_risk_above))

    @property
    def range_text(self) -> str:
        low = "" if self.min is None else (f"> {self.min:g}" if self.min_exclusive else f"{self.min:g}")
        kind = "whole number" if self.integer else "number"
        if self.max is None:
            bound = f"{low}" if self.min_exclusive else f"≥ {low}"
            return f"a {kind} {bound} {self.unit}".strip()
        return f"a {kind} from {low} to {self.max:g}"

    def validate(self, value: object) -> float:
        """The value as stored, or InvalidInput naming the measure's range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput("scoreValue", f"must be a number: {self.name} takes {self.range_text}")
        if self.integer and float(value) != int(value):
            raise InvalidInput("scoreValue", f"{self.name} takes {self.range_text}")
        too_low = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
        too_high = self.max is not None and value > self.max
        if too_low or too_high:
            raise InvalidInput("scoreValue", f"{value:g} is out of range: {self.name} takes {self.range_text}")
        return float(value)

    def trend(self, latest: float, previous: float | None) -> str:
        """'better', 'worse' or 'same' respecting the measure's direction ('' with no previous)."""
        if previous is None:
            return ""
        if latest == previous:
            return "same"
        improved = latest > previous if self.better == "higher" else latest < previous
        return "better" if improved else "worse"


@dataclass(frozen=True)
class Term:
    value: str
    label: str
    colour: str = "grey"


class Catalogue:
    def __init__(self, measures: dict[str, Measure], vocabulary: dict[str, dict[str, Term]]):
        self.measures = measures
        self.vocabulary = vocabulary

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> "Catalogue":
        raw = json.loads((data_dir / "measures.json").read_text())["measures"]
        measures = {
            m["scoreType"]: Measure(
                score_type=m["scoreType"], name=m["name"], integer=m["integer"], min=m.get("min"),
                max=m.get("max"), unit=m["unit"], better=m["better"], loinc=m.get("loinc"),
                min_exclusive=m.get("minExclusive", False), note=m.get("note"),
                fall_risk_below=m.get("fallRiskBelow"), fall_risk_above=m.get("fallRiskAbove"),
            )
            for m in raw
        }
        vocab_raw = json.loads((data_dir / "vocabulary.json").read_text())
        vocabulary = {
            name: {t["value"]: Term(t["value"], t["label"], t.get("colour", "grey")) for t in terms}
            for name, terms in vocab_raw.items()
        }
        return cls(measures, vocabulary)

    def measure(self, score_type: object) -> Measure:
        if not isinstance(score_type, str) or score_type not in self.measures:
            known = ", ".join(sorted(self.measures))
            raise InvalidInput("scoreType", f"unknown measure {str(score_type)[:40]!r}; known: {known}")
        return self.measures[score_type]

    def term(self, field: str, value: object) -> str:
        terms = self.vocabulary[field]
        if not isinstance(value, str) or value not in terms:
            raise InvalidInput(field, f"must be one of: {', '.join(terms)}")
        return value


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    return Catalogue.load()
