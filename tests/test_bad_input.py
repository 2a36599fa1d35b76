"""Bad input to every write: a clear error that names the field, and nothing written.

Each test runs a family of cases against one world; every case must raise the expected error naming
the expected field, and leave every domain table exactly as it was. The failures are collected so one
run shows every case that misbehaves.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support import World, domain_snapshot
from dashboard.errors import InvalidInput, MissingField, NotFound, StoreError

UTC = timezone.utc
NOW = datetime.now(UTC) - timedelta(hours=1)
NAIVE = datetime(2026, 1, 5, 10, 30)
MEGABYTE = "x" * (1024 * 1024)

Case = Callable[[World], Awaitable[Any]]


def patient_fields(w: World, **changes: Any) -> dict[str, Any]:
    fields = {"patientId": "NEW-1", "displayName": "New Patient", "primaryTherapist": w.users["owner"].id,
              "mobilityStatus": "independent", "dateOfBirth": datetime(1940, 2, 3, tzinfo=UTC)}
    return _apply(fields, changes)


def score_fields(w: World, **changes: Any) -> dict[str, Any]:
    fields = {"patient": w.patient.id, "scoreDate": NOW, "scoreType": "barthel", "scoreValue": 50}
    return _apply(fields, changes)


def note_fields(w: World, **changes: Any) -> dict[str, Any]:
    fields = {"patient": w.patient.id, "sessionDate": NOW, "sessionType": "review", "noteText": "Seen.",
              "followUpNeeded": False}
    return _apply(fields, changes)


def equipment_fields(w: World, **changes: Any) -> dict[str, Any]:
    fields = {"patient": w.patient.id, "equipmentName": "Walker", "status": "checked_out"}
    return _apply(fields, changes)


def user_fields(**changes: Any) -> dict[str, Any]:
    fields = {"username": "newbie", "email": "newbie@example.org", "password": "a long enough password",
              "role": "contributor"}
    return _apply(fields, changes)


DROP = object()


def _apply(fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def create(class_name: str, fields: Callable[[World], dict[str, Any]], principal: str = "owner") -> Case:
    return lambda w: w.store.create(principal=getattr(w, principal), class_name=class_name, fields=fields(w))


class Prepared:
    """A case whose target record is made first, before the snapshot that must stay unchanged."""

    def __init__(self, prepare: Callable[[World], Awaitable[str]] | None, run: Callable[[World, Any], Awaitable[Any]]):
        self.prepare, self.run = prepare, run


def update(class_name: str, target: Callable[[World], Awaitable[str]] | str, changes: dict[str, Any],
           principal: str = "lead", **kwargs: Any) -> Prepared:
    async def run(w: World, object_id: str | None) -> Any:
        return await w.store.update(principal=getattr(w, principal), class_name=class_name,
                                    object_id=object_id or w.patient.id, changes=changes, **kwargs)
    return Prepared(None if target == "P" else target, run)  # type: ignore[arg-type]


async def a_score(w: World) -> str:
    return (await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel",
                                       value=40)).id


async def a_note(w: World) -> str:
    return (await w.store.add_note(principal=w.owner, patient_id=w.patient.id, session_type="review",
                                   text="Follow up on the hoist.", follow_up=True)).id


async def an_equipment_log(w: World) -> str:
    return (await w.store.check_out_equipment(principal=w.owner, patient_id=w.patient.id, name="Walker")).id


def sign_up(**changes: Any) -> Case:
    fields = _apply({"username": "newcomer", "email": "newcomer@example.org",
                     "password": "a long enough password"}, changes)
    return lambda w: w.store.sign_up(**fields)


def update_user(changes: dict[str, Any], principal: str = "lead", target: str = "owner") -> Case:
    return lambda w: w.store.update_user(principal=getattr(w, principal), user_id=w.users[target].id,
                                         changes=changes)


async def check_cases(world: World, cases: list[tuple[str, Any, type[StoreError], str, tuple[str, ...]]]):
    """Runs each case; returns what went wrong. A case: (label, call, error type, field, words)."""
    problems = []
    for label, call, error, field, words in cases:
        target = await call.prepare(world) if isinstance(call, Prepared) and call.prepare else None
        before = await domain_snapshot(world.store.db)
        try:
            await (call.run(world, target) if isinstance(call, Prepared) else call(world))
        except StoreError as exc:
            named = getattr(exc, "field", None)
            if not isinstance(exc, error):
                problems.append(f"{label}: {type(exc).__name__} {str(exc)[:120]!r}, expected {error.__name__}")
            elif error is InvalidInput and isinstance(exc, MissingField):
                # A wrong value is not a missing one: "is required" sends the user to the wrong place.
                problems.append(f"{label}: answered as missing: {exc}")
            elif named is not None and named != field:
                problems.append(f"{label}: names {named!r}, expected {field!r}")
            elif field not in str(exc):
                problems.append(f"{label}: message {str(exc)[:120]!r} does not name {field!r}")
            elif not all(word in str(exc) for word in words):
                problems.append(f"{label}: message {str(exc)[:120]!r} lacks {words}")
        except Exception as exc:  # noqa: BLE001 - anything else would be a 500 for bad input
            problems.append(f"{label}: {type(exc).__name__}: {str(exc)[:120]} (not a store error)")
        else:
            problems.append(f"{label}: accepted")
        if await domain_snapshot(world.store.db) != before:
            problems.append(f"{label}: wrote to the database")
    return problems


# -- missing required fields ---------------------------------------------------------------------
REQUIRED = {
    "Patient": ["patientId", "displayName", "primaryTherapist", "mobilityStatus"],
    "MobilityScore": ["patient", "scoreDate", "scoreType", "scoreValue"],
    "SessionNote": ["patient", "sessionDate", "sessionType", "noteText", "followUpNeeded"],
    "EquipmentLog": ["patient", "equipmentName", "status"],
}
BUILDERS = {"Patient": patient_fields, "MobilityScore": score_fields, "SessionNote": note_fields,
            "EquipmentLog": equipment_fields}


async def test_missing_required_fields(world: World):
    cases = []
    for class_name, names in REQUIRED.items():
        build = BUILDERS[class_name]
        for name in names:
            principal = "lead" if class_name == "Patient" else "owner"
            for blank in (DROP, None):
                cases.append((f"{class_name} without {name} ({'absent' if blank is DROP else 'null'})",
                              create(class_name, lambda w, b=build, n=name, v=blank: b(w, **{n: v}), principal),
                              MissingField, name, ("required",)))
        if class_name != "Patient":
            cases.append((f"{class_name} with blank text", create(class_name, lambda w, b=build: b(w, **(
                {"scoreType": "  "} if b is score_fields else {"noteText": "   "} if b is note_fields
                else {"equipmentName": ""})), "owner"), MissingField,
                {"MobilityScore": "scoreType", "SessionNote": "noteText", "EquipmentLog": "equipmentName"}[class_name],
                ()))
    for name in ("username", "email", "password"):
        cases.append((f"_User without {name}", create("_User", lambda w, n=name: user_fields(**{n: DROP}), "lead"),
                      MissingField, name, ()))
        cases.append((f"sign-up without {name}", sign_up(**{name: ""}), MissingField, name, ()))
    cases += [
        ("Patient displayName emptied", update("Patient", "P", {"displayName": " "}), MissingField, "displayName", ()),
        ("Patient mobilityStatus nulled", update("Patient", "P", {"mobilityStatus": None}), MissingField,
         "mobilityStatus", ()),
        ("entered-in-error without a reason", update("MobilityScore", a_score, {"enteredInError": True}),
         MissingField, "errorReason", ()),
    ]
    assert await check_cases(world, cases) == []


# -- wrong types ---------------------------------------------------------------------------------
async def test_wrong_types(world: World):
    cases = [
        ("scoreValue as text", create("MobilityScore", lambda w: score_fields(w, scoreValue="55")), InvalidInput, "scoreValue", ("number",)),
        ("scoreValue as boolean", create("MobilityScore", lambda w: score_fields(w, scoreValue=True)), InvalidInput, "scoreValue", ()),
        ("scoreValue NaN", create("MobilityScore", lambda w: score_fields(w, scoreValue=float("nan"))), InvalidInput, "scoreValue", ()),
        ("scoreValue infinite", create("MobilityScore", lambda w: score_fields(w, scoreValue=float("inf"))), InvalidInput, "scoreValue", ()),
        ("scoreValue a 400-digit integer", create("MobilityScore", lambda w: score_fields(w, scoreValue=10 ** 400)), InvalidInput, "scoreValue", ()),
        ("scoreType as number", create("MobilityScore", lambda w: score_fields(w, scoreType=3)), InvalidInput, "scoreType", ("text",)),
        ("displayName as number", create("Patient", lambda w: patient_fields(w, displayName=5), "lead"), InvalidInput, "displayName", ("text",)),
        ("patientId as number", create("Patient", lambda w: patient_fields(w, patientId=12345), "lead"), InvalidInput, "patientId", ()),
        ("noteText as number", create("SessionNote", lambda w: note_fields(w, noteText=5)), InvalidInput, "noteText", ()),
        ("equipmentName as number", create("EquipmentLog", lambda w: equipment_fields(w, equipmentName=5)), InvalidInput, "equipmentName", ()),
        ("followUpNeeded as text", create("SessionNote", lambda w: note_fields(w, followUpNeeded="yes")), InvalidInput, "followUpNeeded", ()),
        ("followUpNeeded as 1", create("SessionNote", lambda w: note_fields(w, followUpNeeded=1)), InvalidInput, "followUpNeeded", ()),
        ("scoreDate naive", create("MobilityScore", lambda w: score_fields(w, scoreDate=NAIVE)), InvalidInput, "scoreDate", ("time zone",)),
        ("scoreDate as text", create("MobilityScore", lambda w: score_fields(w, scoreDate="2026-01-05")), InvalidInput, "scoreDate", ()),
        ("sessionDate naive", create("SessionNote", lambda w: note_fields(w, sessionDate=NAIVE)), InvalidInput, "sessionDate", ()),
        ("dateOfBirth naive", create("Patient", lambda w: patient_fields(w, dateOfBirth=NAIVE), "lead"), InvalidInput, "dateOfBirth", ()),
        ("patient pointer as number", create("MobilityScore", lambda w: score_fields(w, patient=7)), InvalidInput, "patient", ()),
        ("primaryTherapist as number", create("Patient", lambda w: patient_fields(w, primaryTherapist=7), "lead"), InvalidInput, "primaryTherapist", ()),
        ("dateOfBirth naive, on update", update("Patient", "P", {"dateOfBirth": NAIVE}), InvalidInput, "dateOfBirth", ()),
        ("mobilityStatus as number, on update", update("Patient", "P", {"mobilityStatus": 3}), InvalidInput, "mobilityStatus", ()),
        ("returnedAt naive", update("EquipmentLog", an_equipment_log, {"status": "returned", "returnedAt": NAIVE}), InvalidInput, "returnedAt", ()),
        ("followUpNeeded cleared with text", update("SessionNote", a_note, {"followUpNeeded": "no"}), InvalidInput, "followUpNeeded", ()),
        ("enteredInError as text", update("MobilityScore", a_score, {"enteredInError": "yes", "errorReason": "typo"}), InvalidInput, "enteredInError", ()),
        ("change reason as number", update("Patient", "P", {"mobilityStatus": "dependent"}, reason=5), InvalidInput, "changeReason", ()),
        ("active as text", update_user({"active": "no"}), InvalidInput, "active", ()),
        ("showFullNames as text", update_user({"showFullNames": "yes"}, target="viewer"), InvalidInput, "showFullNames", ()),
        ("role as number", update_user({"role": 1}), InvalidInput, "role", ()),
        ("username as number", sign_up(username=12345), InvalidInput, "username", ("text",)),
        ("email as number", sign_up(email=12345), InvalidInput, "email", ("text",)),
        ("password as number", sign_up(password=123456789012345), InvalidInput, "password", ("text",)),
    ]
    assert await check_cases(world, cases) == []


# -- values out of range, unknown measures and terms -------------------------------------------------
RANGES = {  # from MEASURES.md: (values that must be refused, words the message must contain)
    "barthel": ([-1, 101, 55.5], "0 to 100"),
    "fim_motor": ([12, 92, 40.5], "13 to 91"),
    "tug": ([0, -3.2], "> 0"),
    "berg": ([-1, 57], "0 to 56"),
    "ampac_mobility": ([5, 25], "6 to 24"),
    "six_minute_walk": ([-0.5], "≥ 0"),
    "fac": ([-1, 6, 2.5], "0 to 5"),
    "tinetti": ([-1, 29], "0 to 28"),
    "jh_hlm": ([0, 9], "1 to 8"),
}


async def test_out_of_range_scores_name_the_range(world: World):
    cases = [(f"{measure} {value}", create("MobilityScore", lambda w, m=measure, v=value: score_fields(
        w, scoreType=m, scoreValue=v)), InvalidInput, "scoreValue", (words,))
        for measure, (values, words) in RANGES.items() for value in values]
    cases += [
        ("score dated next week", create("MobilityScore", lambda w: score_fields(w, scoreDate=NOW + timedelta(days=7))),
         InvalidInput, "scoreDate", ("future",)),
        ("unknown mobilityStatus", create("Patient", lambda w: patient_fields(w, mobilityStatus="flying"), "lead"),
         InvalidInput, "mobilityStatus", ("independent",)),
        ("unknown sessionType", create("SessionNote", lambda w: note_fields(w, sessionType="nap")), InvalidInput,
         "sessionType", ()),
        ("equipment created as lost", create("EquipmentLog", lambda w: equipment_fields(w, status="lost")),
         InvalidInput, "status", ()),
        ("unknown equipment status", update("EquipmentLog", an_equipment_log, {"status": "vanished"}),
         InvalidInput, "status", ()),
        ("unknown role", update_user({"role": "superuser"}), InvalidInput, "role", ("lead",)),
        ("short password", sign_up(password="short"), InvalidInput, "password", ("12",)),
        ("bad email", sign_up(email="not-an-email"), InvalidInput, "email", ()),
        ("bad username", sign_up(username="a b"), InvalidInput, "username", ()),
        ("primaryTherapist not a therapist", create("Patient", lambda w: patient_fields(
            w, primaryTherapist=w.users["team_contributor"].id), "lead"), InvalidInput, "primaryTherapist", ()),
        ("primaryTherapist nobody", update("Patient", "P", {"primaryTherapist": "nosuchuser"}), InvalidInput,
         "primaryTherapist", ()),
        ("duplicate patientId", create("Patient", lambda w: patient_fields(w, patientId="DEMO-Q"), "lead"),
         InvalidInput, "patientId", ()),
    ]
    assert await check_cases(world, cases) == []


async def test_boundary_values_are_accepted(world: World):
    for measure, value in [("barthel", 0), ("barthel", 100), ("fim_motor", 13), ("fim_motor", 91), ("tug", 0.1),
                           ("berg", 56), ("ampac_mobility", 6), ("ampac_mobility", 24), ("six_minute_walk", 0),
                           ("fac", 5), ("tinetti", 28), ("jh_hlm", 1), ("jh_hlm", 8)]:
        score = await world.store.record_score(principal=world.owner, patient_id=world.patient.id,
                                               score_type=measure, value=value)
        assert score.score_value == value


async def test_unknown_measures(world: World):
    cases = [(f"scoreType {name[:20]!r}", create("MobilityScore", lambda w, n=name: score_fields(w, scoreType=n)),
              InvalidInput, "scoreType", ())
             for name in ("barthel_index", "BARTHEL", "loinc:96761-2", "x" * 32)]
    assert await check_cases(world, cases) == []


# -- a megabyte where a few words belong ------------------------------------------------------------
async def test_megabyte_strings(world: World):
    cases = [
        ("noteText", create("SessionNote", lambda w: note_fields(w, noteText=MEGABYTE)), InvalidInput, "noteText", ("at most",)),
        ("displayName", create("Patient", lambda w: patient_fields(w, displayName=MEGABYTE), "lead"), InvalidInput, "displayName", ("at most",)),
        ("patientId", create("Patient", lambda w: patient_fields(w, patientId=MEGABYTE), "lead"), InvalidInput, "patientId", ()),
        ("equipmentName", create("EquipmentLog", lambda w: equipment_fields(w, equipmentName=MEGABYTE)), InvalidInput, "equipmentName", ()),
        ("serialNumber", create("EquipmentLog", lambda w: equipment_fields(w, serialNumber=MEGABYTE)), InvalidInput, "serialNumber", ()),
        ("score notes", create("MobilityScore", lambda w: score_fields(w, notes=MEGABYTE)), InvalidInput, "notes", ()),
        ("scoreType", create("MobilityScore", lambda w: score_fields(w, scoreType=MEGABYTE)), InvalidInput, "scoreType", ()),
        ("patient pointer", create("MobilityScore", lambda w: score_fields(w, patient=MEGABYTE)), InvalidInput, "patient", ()),
        ("displayName on update", update("Patient", "P", {"displayName": MEGABYTE}), InvalidInput, "displayName", ()),
        ("change reason", update("Patient", "P", {"mobilityStatus": "dependent"}, reason=MEGABYTE), InvalidInput, "changeReason", ()),
        ("errorReason", update("MobilityScore", a_score, {"enteredInError": True, "errorReason": MEGABYTE}), InvalidInput, "errorReason", ()),
        ("sign-up username", sign_up(username=MEGABYTE), InvalidInput, "username", ()),
        ("sign-up email", sign_up(email=MEGABYTE), InvalidInput, "email", ()),
        ("sign-up password", sign_up(password=MEGABYTE), InvalidInput, "password", ()),
        ("email on update", update_user({"email": MEGABYTE}, principal="owner"), InvalidInput, "email", ()),
        ("a field named with a megabyte", create("MobilityScore", lambda w: score_fields(w, **{MEGABYTE: 1})),
         InvalidInput, "x" * 60, ()),
    ]
    assert await check_cases(world, cases) == []


# -- unknown fields ----------------------------------------------------------------------------------
async def test_unknown_fields(world: World):
    cases = [
        ("Patient create", create("Patient", lambda w: patient_fields(w, ward="B4"), "lead"), InvalidInput, "ward", ()),
        ("score create, typo", create("MobilityScore", lambda w: score_fields(w, scoreValu=3)), InvalidInput, "scoreValu", ()),
        ("note create", create("SessionNote", lambda w: note_fields(w, mood="good")), InvalidInput, "mood", ()),
        ("equipment create", create("EquipmentLog", lambda w: equipment_fields(w, colour="red")), InvalidInput, "colour", ()),
        ("recordedBy someone else", create("MobilityScore", lambda w: score_fields(w, recordedBy=w.lead.user_id)),
         InvalidInput, "recordedBy", ()),
        ("Patient update", update("Patient", "P", {"ward": "B4"}), InvalidInput, "ward", ()),
        ("score update by its recorder", update("MobilityScore", a_score, {"bogus": 1}, principal="owner"),
         InvalidInput, "bogus", ()),
        ("note update", update("SessionNote", a_note, {"bogus": 1}, principal="owner"), InvalidInput, "bogus", ()),
        ("equipment update", update("EquipmentLog", an_equipment_log, {"bogus": 1}), InvalidInput, "bogus", ()),
        ("user update", update_user({"nickname": "Bob"}, principal="owner"), InvalidInput, "nickname", ()),
    ]
    assert await check_cases(world, cases) == []


# -- pointers to patients the principal cannot see ------------------------------------------------
async def test_pointers_to_patients_out_of_sight_are_not_found(world: World):
    q = lambda w: w.other_patient.id  # noqa: E731 - Q: not the owner's, not on its team
    cases = [
        ("owner scores Q", create("MobilityScore", lambda w: score_fields(w, patient=q(w))), NotFound, "patient", ()),
        ("owner notes Q", create("SessionNote", lambda w: note_fields(w, patient=q(w))), NotFound, "patient", ()),
        ("owner lends to Q", create("EquipmentLog", lambda w: equipment_fields(w, patient=q(w))), NotFound, "patient", ()),
        ("outsider scores P", create("MobilityScore", lambda w: score_fields(w), "outsider"), NotFound, "patient", ()),
        ("lead scores nobody", create("MobilityScore", lambda w: score_fields(w, patient="nosuchid00"), "lead"),
         NotFound, "patient", ()),
        ("owner's status history for Q", create("StatusHistory", lambda w: {"patient": q(w), "statusType": "mobilityStatus",
                                                                             "toValue": "independent"}), NotFound, "patient", ()),
        ("note amending Q's note", create("SessionNote", lambda w: note_fields(w, amends=w.q_note)), NotFound, "amends", ()),
    ]
    world.q_note = (await world.store.add_note(principal=world.lead, patient_id=world.other_patient.id,  # type: ignore[attr-defined]
                                               session_type="review", text="Q only.")).id
    problems = await check_cases(world, cases)
    assert problems == []
    # The answer for a patient out of sight is the answer for one that does not exist.
    answers = []
    for patient in (world.other_patient.id, "nosuchid00"):
        with pytest.raises(NotFound) as caught:
            await world.store.record_score(principal=world.owner, patient_id=patient, score_type="barthel", value=5)
        answers.append(str(caught.value))
    assert answers[0] == answers[1]
    with pytest.raises(NotFound):
        await world.store.add_care_team_member(principal=world.owner, patient_id=world.other_patient.id,
                                               user_id=world.users["outsider"].id)
