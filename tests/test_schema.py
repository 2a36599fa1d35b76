"""The code's field specs agree with the shared schema, and the measure catalogue with MEASURES.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboard.catalogue import Catalogue, default_catalogue
from dashboard.schema import CLASSES

# shared/ sits beside the clone (as on the developers' machines and in CI).
SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec"
SCHEMA = SPEC_DIR / "schema.json"
MEASURES_MD = SPEC_DIR / "MEASURES.md"
BUILTIN = {"objectId", "createdAt", "updatedAt"}  # Parse's own fields, kept outside CLASSES
# Fields the code adds to the seed's schema, each for a rule in ACCESS.md or an issue.
ADDITIONS = {
    ("_User", "active"),  # "a lead deactivates"
    ("Patient", "archived"),  # "never [deleted]; a lead archives"
    ("Patient", "bed"),  # issue 16: the ward board shows bed, bay or room, ordered by it
    ("MobilityScore", "enteredInError"),  # "marks it entered-in-error, with a reason"
    ("MobilityScore", "errorReason"),
    ("SessionNote", "amends"),  # "a correction is a new note that points to the one it amends"
}


def _code_name(spec_class: str) -> str:
    return "_User" if spec_class == "User" else spec_class


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA.exists():
        pytest.skip(f"shared spec {SCHEMA} is not present on this machine")
    return json.loads(SCHEMA.read_text())


def test_every_schema_field_is_in_the_code_with_its_type_requirement_and_target(schema: dict):
    problems = []
    for spec_class in schema["classes"]:
        name = _code_name(spec_class["className"])
        if name not in CLASSES:
            problems.append(f"class {name} missing")
            continue
        fields = CLASSES[name]
        for field, want in spec_class["fields"].items():
            if field in BUILTIN:
                continue
            have = fields.get(field)
            if have is None:
                problems.append(f"{name}.{field} missing")
                continue
            if have.kind != want["type"]:
                problems.append(f"{name}.{field}: type {have.kind}, schema says {want['type']}")
            if have.required != want["required"]:
                problems.append(f"{name}.{field}: required={have.required}, schema says {want['required']}")
            if want["type"] == "Pointer" and _code_name(want["targetClass"]) != have.target:
                problems.append(f"{name}.{field}: points to {have.target}, schema says {want['targetClass']}")
    assert problems == []


def test_the_code_adds_only_the_fields_access_needs(schema: dict):
    in_schema = {(_code_name(c["className"]), f) for c in schema["classes"] for f in c["fields"]}
    in_code = {(c, f) for c, fields in CLASSES.items() for f in fields}
    assert in_code - in_schema == ADDITIONS
    assert {_code_name(c["className"]) for c in schema["classes"]} == set(CLASSES)


def test_private_fields_are_the_ones_access_md_names(schema: dict):
    private = {(c, f) for c, fields in CLASSES.items() for f, spec in fields.items() if spec.private}
    assert {("Patient", "patientId"), ("Patient", "dateOfBirth"), ("SessionNote", "noteText")} <= private


# -- the measure catalogue ---------------------------------------------------------------------------
# From MEASURES.md: scoreType -> (integer, min, min exclusive, max, better, LOINC or None)
MEASURES = {
    "barthel": (True, 0, False, 100, "higher", "96761-2"),
    "fim_motor": (True, 13, False, 91, "higher", None),
    "tug": (False, 0, True, None, "lower", "89423-8"),
    "berg": (True, 0, False, 56, "higher", None),
    "ampac_mobility": (True, 6, False, 24, "higher", None),
    "six_minute_walk": (False, 0, False, None, "higher", "64098-7"),
    "fac": (True, 0, False, 5, "higher", None),
    "tinetti": (True, 0, False, 28, "higher", None),
    "jh_hlm": (True, 1, False, 8, "higher", None),
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


def test_catalogue_measures_match_measures_md(catalogue: Catalogue):
    actual = {m.score_type: (m.integer, m.min, m.min_exclusive, m.max, m.better, m.loinc)
              for m in catalogue.measures.values()}
    assert actual == MEASURES


def test_measures_md_lists_the_same_measures_as_the_catalogue(catalogue: Catalogue):
    if not MEASURES_MD.exists():
        pytest.skip(f"shared spec {MEASURES_MD} is not present on this machine")
    rows = re.findall(r"^\| ([a-z_0-9]+) \|", MEASURES_MD.read_text(), flags=re.MULTILINE)
    assert set(rows) == set(catalogue.measures) == set(MEASURES)
    # Spot-check the ranges as written there against the table above.
    text = MEASURES_MD.read_text()
    for score_type, (integer, low, _, high, better, _) in MEASURES.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {score_type} |"))
        if high is not None:
            assert f"{low}–{high}" in line, line
        assert ("integer" in line) == integer, line
        assert f"| {better} |" in line, line


@pytest.mark.parametrize("score_type", sorted(MEASURES))
def test_each_measure_accepts_its_bounds_and_refuses_beyond_them(catalogue: Catalogue, score_type: str):
    from dashboard.errors import InvalidInput

    integer, low, exclusive, high, _, _ = MEASURES[score_type]
    measure = catalogue.measure(score_type)
    if exclusive:
        assert measure.validate(low + 0.1) == low + 0.1
        with pytest.raises(InvalidInput):
            measure.validate(low)
    else:
        assert measure.validate(low) == low
        with pytest.raises(InvalidInput):
            measure.validate(low - 1)
    if high is not None:
        assert measure.validate(high) == high
        with pytest.raises(InvalidInput):
            measure.validate(high + 1)
    else:
        assert measure.validate(10_000) == 10_000
    if integer:
        with pytest.raises(InvalidInput):
            measure.validate(low + 0.5)
