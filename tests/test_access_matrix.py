"""The access contract (shared/spec/ACCESS.md), principal by principal, class by class, operation by operation.

The expected outcomes are written out by hand in MATRIX below, read off ACCESS.md's tables; nothing
here asks the access index what the answer should be. P is the patient under test; Q is a patient
whose primaryTherapist is other_therapist and whose care team nobody else is on.

Outcome cells: ok; 404 = NotFound (unreadable, identical to a missing id); 403 = PermissionDenied
(readable, not writable); 401 = NotAuthenticated (no session); 400 = InvalidInput. For `find` and
`count`: which patients' records come back (P+Q, P, Q, none), or `all` users.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import select

from tests.support import World, domain_snapshot, mailbox, outcome_of, refusal_count
from dashboard.hub import class_topic, patient_topic
from dashboard.models import EquipmentLog, MobilityScore, Patient, SessionNote, StatusHistory, User
from dashboard.schema import MODELS

KINDS = ["lead", "owner", "other_therapist", "team_therapist", "team_contributor", "outsider", "viewer",
         "anonymous"]
# Attempts run in this order within a row: the lead last, because a lead's successful change of a
# therapist, a role or an account would change what the others may do.
ORDER = ["anonymous", "outsider", "viewer", "other_therapist", "team_contributor", "team_therapist",
         "owner", "lead"]

MATRIX = """
class          operation                    lead  owner other_t team_t team_c outsider viewer anon

Patient        get                          ok    ok    404     ok     ok     404      ok     401
Patient        find                         P+Q   P     Q       P      P      none     P      401
Patient        count                        P+Q   P     Q       P      P      none     P      401
Patient        create-for-owner             ok    ok    403     403    403    403      403    401
Patient        create-as-own-therapist      400   ok    ok      ok     403    403      403    401
Patient        update-displayName           ok    ok    404     403    403    404      403    401
Patient        update-dateOfBirth           ok    ok    404     403    403    404      403    401
Patient        update-mobilityStatus        ok    ok    404     403    403    404      403    401
Patient        update-patientId             ok    403   404     403    403    404      403    401
Patient        delete                       403   403   404     403    403    404      403    401
Patient        update-primaryTherapist      ok    403   404     403    403    404      403    401

MobilityScore  get                          ok    ok    404     ok     ok     404      ok     401
MobilityScore  find                         P+Q   P     Q       P      P      none     P      401
MobilityScore  count                        P+Q   P     Q       P      P      none     P      401
MobilityScore  create                       ok    ok    404     ok     ok     404      403    401
MobilityScore  mark-entered-in-error        ok    403   404     403    ok     404      403    401
MobilityScore  edit-scoreValue              403   403   404     403    403    404      403    401
MobilityScore  delete                       403   403   404     403    403    404      403    401

SessionNote    get                          ok    ok    404     ok     ok     404      404    401
SessionNote    find                         P+Q   P     Q       P      P      none     none   401
SessionNote    count                        P+Q   P     Q       P      P      none     none   401
SessionNote    create                       ok    ok    404     ok     ok     404      403    401
SessionNote    clear-followUpNeeded         ok    ok    404     ok     ok     404      404    401
SessionNote    edit-noteText                403   403   404     403    403    404      404    401
SessionNote    delete                       403   403   404     403    403    404      404    401

EquipmentLog   get                          ok    ok    404     ok     ok     404      ok     401
EquipmentLog   find                         P+Q   P     Q       P      P      none     P      401
EquipmentLog   count                        P+Q   P     Q       P      P      none     P      401
EquipmentLog   create                       ok    ok    404     ok     ok     404      403    401
EquipmentLog   return                       ok    ok    404     ok     ok     404      403    401
EquipmentLog   edit-equipmentName           ok    403   404     403    403    404      403    401
EquipmentLog   delete                       403   403   404     403    403    404      403    401

StatusHistory  get                          ok    ok    404     ok     ok     404      ok     401
StatusHistory  find                         P+Q   P     Q       P      P      none     P      401
StatusHistory  count                        P+Q   P     Q       P      P      none     P      401
StatusHistory  create                       403   403   404     403    403    404      403    401
StatusHistory  edit-toValue                 403   403   404     403    403    404      403    401
StatusHistory  delete                       403   403   404     403    403    404      403    401

_User          get                          ok    ok    ok      ok     ok     ok       404    401
_User          find                         all   all   all     all    all    all      self   401
_User          count                        all   all   all     all    all    all      self   401
_User          create                       ok    403   403     403    403    403      403    401
_User          edit-owners-email            403   ok    403     403    403    403      404    401
_User          edit-own-email               ok    ok    ok      ok     ok     ok       ok     401
_User          delete                       403   403   403     403    403    403      404    401
_User          edit-owners-role             ok    403   403     403    403    403      404    401
_User          deactivate-owner             ok    403   403     403    403    403      404    401
"""
# Notes on rows that are easy to misread:
# - MobilityScore mark-entered-in-error: the score under test was recorded by team_contributor;
#   ACCESS.md allows "the recorder or a lead", so the owning therapist is refused.
# - create-as-own-therapist: the principal names itself primaryTherapist; a lead is not a therapist,
#   so that is bad input, not a denial.
# - _User: others' username and role are readable by anyone signed in, so refusals are 403, not 404;
#   but a viewer (a ward screen) reads no staff usernames: only its own account exists for it ("self"),
#   so its get, change and delete of another are 404, as for an unknown id (a 403 would confirm
#   the account).


def _rows() -> list[tuple[str, str, dict[str, str]]]:
    lines = [line.split() for line in MATRIX.strip().splitlines() if line.strip()]
    header, body = lines[0], lines[1:]
    assert header[2:] == ["lead", "owner", "other_t", "team_t", "team_c", "outsider", "viewer", "anon"]
    out = []
    for cells in body:
        assert len(cells) == 10, cells
        out.append((cells[0], cells[1], dict(zip(KINDS, cells[2:]))))
    return out


ROWS = _rows()
STATUS_BY_KIND = {  # a different mobilityStatus per principal, none equal to P's "supervision"
    "anonymous": "independent", "outsider": "modified_independent", "viewer": "minimal_assist",
    "other_therapist": "moderate_assist", "team_contributor": "maximal_assist",
    "team_therapist": "dependent", "owner": "bed_bound", "lead": "independent",
}
UTC = timezone.utc


@dataclass
class Ctx:
    world: World
    score_p: MobilityScore
    note_p: SessionNote
    equipment_p: EquipmentLog
    history_p: StatusHistory

    @property
    def store(self):
        return self.world.store

    def user_id(self, kind: str) -> str:
        if kind == "lead":
            return self.world.lead.user_id
        if kind == "anonymous":
            return self.world.users["owner"].id
        return self.world.users[kind].id

    def target(self, class_name: str) -> str:
        return {
            "Patient": self.world.patient.id, "MobilityScore": self.score_p.id, "SessionNote": self.note_p.id,
            "EquipmentLog": self.equipment_p.id, "StatusHistory": self.history_p.id,
            "_User": self.world.users["owner"].id,
        }[class_name]


@pytest.fixture
async def ctx(world: World) -> Ctx:
    store, w = world.store, world
    p, q = w.patient.id, w.other_patient.id
    score_p = await store.record_score(principal=w.team_contributor, patient_id=p, score_type="barthel", value=50)
    note_p = await store.add_note(principal=w.owner, patient_id=p, session_type="assessment",
                                  text="Transfers with one assist.", follow_up=True)
    equipment_p = await store.check_out_equipment(principal=w.owner, patient_id=p, name="Walker")
    await store.record_score(principal=w.other_therapist, patient_id=q, score_type="tug", value=14.2)
    await store.add_note(principal=w.other_therapist, patient_id=q, session_type="review", text="Stable.")
    await store.check_out_equipment(principal=w.other_therapist, patient_id=q, name="Cane")
    async with store.db.read() as session:
        history_p = await session.scalar(select(StatusHistory).where(
            StatusHistory.patient_id == p, StatusHistory.status_type == "mobilityStatus"))
    return Ctx(world, score_p, note_p, equipment_p, history_p)


# -- what each operation does, and how a success shows --------------------------------------------
Run = Callable[[Ctx, str, Any, Any], Awaitable[Any]]  # (ctx, kind, principal, prepared) -> result
Check = Callable[[Ctx, str, Any, Any], Awaitable[None]]  # (ctx, kind, result, prepared)


async def _row(ctx: Ctx, model: type, object_id: str) -> Any:
    async with ctx.store.db.read() as session:
        return await session.get(model, object_id)


def _update(class_name: str, changes: Callable[[Ctx, str], dict[str, Any]], target: Callable[[Ctx, Any], str] | None = None) -> Run:
    async def run(ctx: Ctx, kind: str, principal: Any, prepared: Any) -> Any:
        object_id = target(ctx, prepared) if target else ctx.target(class_name)
        return await ctx.store.update(principal=principal, class_name=class_name, object_id=object_id,
                                      changes=changes(ctx, kind))
    return run


async def _fresh_score(ctx: Ctx, kind: str) -> MobilityScore:
    return await ctx.store.record_score(principal=ctx.world.team_contributor, patient_id=ctx.world.patient.id,
                                        score_type="berg", value=40)


async def _fresh_note(ctx: Ctx, kind: str) -> SessionNote:
    return await ctx.store.add_note(principal=ctx.world.owner, patient_id=ctx.world.patient.id,
                                    session_type="treatment", text="Needs a review of the hoist.", follow_up=True)


async def _fresh_equipment(ctx: Ctx, kind: str) -> EquipmentLog:
    return await ctx.store.check_out_equipment(principal=ctx.world.owner, patient_id=ctx.world.patient.id,
                                               name="Shower chair")


def _record_fields(class_name: str, patient_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "MobilityScore": {"patient": patient_id, "scoreType": "fac", "scoreValue": 3, "scoreDate": now},
        "SessionNote": {"patient": patient_id, "sessionType": "review", "noteText": "Seen on the ward.",
                        "followUpNeeded": False, "sessionDate": now},
        "EquipmentLog": {"patient": patient_id, "equipmentName": "Frame", "status": "checked_out"},
        "StatusHistory": {"patient": patient_id, "statusType": "mobilityStatus", "fromValue": "supervision",
                          "toValue": "independent"},
    }[class_name]


async def _patient_field(ctx: Ctx, attr: str) -> Any:
    return getattr(await _row(ctx, Patient, ctx.world.patient.id), attr)


@dataclass
class Op:
    run: Run
    check: Check | None = None  # how a success shows in the database
    prepare: Callable[[Ctx, str], Awaitable[Any]] | None = None  # a fresh target per attempt


def _get(class_name: str) -> Op:
    async def run(ctx, kind, principal, prepared):
        return await ctx.store.get(principal=principal, class_name=class_name, object_id=ctx.target(class_name))

    async def check(ctx, kind, result, prepared):
        assert result.id == ctx.target(class_name)
    return Op(run, check)


def _delete(class_name: str) -> Op:
    async def run(ctx, kind, principal, prepared):
        return await ctx.store.delete(principal=principal, class_name=class_name, object_id=ctx.target(class_name))
    return Op(run)


def _create(class_name: str) -> Op:
    async def run(ctx, kind, principal, prepared):
        return await ctx.store.create(principal=principal, class_name=class_name,
                                      fields=_record_fields(class_name, ctx.world.patient.id))

    async def check(ctx, kind, result, prepared):
        stored = await _row(ctx, MODELS[result.class_name], result.id)
        assert stored is not None and stored.patient_id == ctx.world.patient.id
    return Op(run, check)


async def _create_patient_for(ctx: Ctx, kind: str, principal: Any, therapist_id: str, tag: str) -> Any:
    return await ctx.store.create(principal=principal, class_name="Patient", fields={
        "patientId": f"NEW-{tag}-{kind}", "displayName": f"New {kind}",
        "primaryTherapist": therapist_id, "mobilityStatus": "independent"})


async def _check_new_patient(ctx: Ctx, kind: str, result: Any, prepared: Any) -> None:
    stored = await _row(ctx, Patient, result.id)
    assert stored is not None and stored.patient_id.endswith(f"-{kind}")
    assert stored.primary_therapist_id in (ctx.user_id(kind), ctx.world.users["owner"].id)


async def _create_user(ctx, kind, principal, prepared):
    return await ctx.store.create(principal=principal, class_name="_User", fields={
        "username": f"new-{kind.replace('_', '-')}", "email": f"new-{kind}@example.org",
        "password": "a long enough password", "role": "contributor"})


async def _check_new_user(ctx, kind, result, prepared):
    stored = await _row(ctx, User, result.id)
    assert stored is not None and stored.role == "contributor"


def _find(class_name: str, counting: bool) -> Op:
    async def run(ctx, kind, principal, prepared):
        if counting:
            return await ctx.store.count(principal=principal, class_name=class_name)
        rows = await ctx.store.find(principal=principal, class_name=class_name, limit=1000)
        return {r.id for r in rows}
    return Op(run)


async def _ids_of(ctx: Ctx, class_name: str, scope: str, kind: str) -> set[str]:
    """The ids the database holds for the patients named by a find/count cell ("self": `kind`'s account)."""
    w = ctx.world
    if scope == "self":
        return {ctx.user_id(kind)}
    patients = {"P+Q": {w.patient.id, w.other_patient.id}, "P": {w.patient.id}, "Q": {w.other_patient.id},
                "none": set()}
    model = {"Patient": Patient, "MobilityScore": MobilityScore, "SessionNote": SessionNote,
             "EquipmentLog": EquipmentLog, "StatusHistory": StatusHistory, "_User": User}[class_name]
    async with ctx.store.db.read() as session:
        if scope == "all":
            return set(await session.scalars(select(User.id)))
        column = Patient.id if class_name == "Patient" else model.patient_id
        return set(await session.scalars(select(model.id).where(column.in_(patients[scope]))))


OPS: dict[tuple[str, str], Op] = {
    **{(c, "get"): _get(c) for c in ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory", "_User")},
    **{(c, "delete"): _delete(c) for c in ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory", "_User")},
    **{(c, "find"): _find(c, False) for c in ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory", "_User")},
    **{(c, "count"): _find(c, True) for c in ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory", "_User")},
    **{(c, "create"): _create(c) for c in ("MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory")},
    ("Patient", "create-for-owner"): Op(
        lambda ctx, kind, p, _: _create_patient_for(ctx, kind, p, ctx.world.users["owner"].id, "for-owner"), _check_new_patient),
    ("Patient", "create-as-own-therapist"): Op(
        lambda ctx, kind, p, _: _create_patient_for(ctx, kind, p, ctx.user_id(kind), "own"), _check_new_patient),
    ("_User", "create"): Op(_create_user, _check_new_user),
    ("Patient", "update-displayName"): Op(
        _update("Patient", lambda ctx, kind: {"displayName": f"Renamed by {kind}"}),
        lambda ctx, kind, r, _: _expect(_patient_field(ctx, "display_name"), f"Renamed by {kind}")),
    ("Patient", "update-dateOfBirth"): Op(
        _update("Patient", lambda ctx, kind: {"dateOfBirth": datetime(1950, 1, 1, tzinfo=UTC)}),
        lambda ctx, kind, r, _: _expect(_patient_field(ctx, "date_of_birth"), datetime(1950, 1, 1, tzinfo=UTC))),
    ("Patient", "update-mobilityStatus"): Op(
        _update("Patient", lambda ctx, kind: {"mobilityStatus": STATUS_BY_KIND[kind]}),
        lambda ctx, kind, r, _: _expect(_patient_field(ctx, "mobility_status"), STATUS_BY_KIND[kind])),
    ("Patient", "update-primaryTherapist"): Op(
        _update("Patient", lambda ctx, kind: {"primaryTherapist": ctx.world.users["team_therapist"].id}),
        lambda ctx, kind, r, _: _expect(_patient_field(ctx, "primary_therapist_id"), ctx.world.users["team_therapist"].id)),
    ("Patient", "update-patientId"): Op(
        _update("Patient", lambda ctx, kind: {"patientId": f"NEW-{kind}"}),
        lambda ctx, kind, r, _: _expect(_patient_field(ctx, "patient_id"), f"NEW-{kind}")),
    ("MobilityScore", "mark-entered-in-error"): Op(
        _update("MobilityScore", lambda ctx, kind: {"enteredInError": True, "errorReason": "wrong patient"},
                target=lambda ctx, fresh: fresh.id),
        lambda ctx, kind, r, fresh: _expect(_attr(ctx, MobilityScore, fresh.id, "entered_in_error"), True),
        prepare=_fresh_score),
    ("MobilityScore", "edit-scoreValue"): Op(_update("MobilityScore", lambda ctx, kind: {"scoreValue": 99})),
    ("SessionNote", "clear-followUpNeeded"): Op(
        _update("SessionNote", lambda ctx, kind: {"followUpNeeded": False}, target=lambda ctx, fresh: fresh.id),
        lambda ctx, kind, r, fresh: _expect(_attr(ctx, SessionNote, fresh.id, "follow_up_needed"), False),
        prepare=_fresh_note),
    ("SessionNote", "edit-noteText"): Op(_update("SessionNote", lambda ctx, kind: {"noteText": "Rewritten."})),
    ("EquipmentLog", "return"): Op(
        _update("EquipmentLog", lambda ctx, kind: {"status": "returned"}, target=lambda ctx, fresh: fresh.id),
        lambda ctx, kind, r, fresh: _expect(_attr(ctx, EquipmentLog, fresh.id, "status"), "returned"),
        prepare=_fresh_equipment),
    ("EquipmentLog", "edit-equipmentName"): Op(
        _update("EquipmentLog", lambda ctx, kind: {"equipmentName": f"Rollator by {kind}"}),
        lambda ctx, kind, r, _: _expect(_attr(ctx, EquipmentLog, ctx.equipment_p.id, "equipment_name"), f"Rollator by {kind}")),
    ("StatusHistory", "edit-toValue"): Op(_update("StatusHistory", lambda ctx, kind: {"toValue": "independent"})),
    ("_User", "edit-owners-email"): Op(
        _update("_User", lambda ctx, kind: {"email": f"changed-by-{kind}@example.org"}),
        lambda ctx, kind, r, _: _expect(_attr(ctx, User, ctx.world.users["owner"].id, "email"), f"changed-by-{kind}@example.org")),
    ("_User", "edit-owners-role"): Op(
        _update("_User", lambda ctx, kind: {"role": "contributor"}),
        lambda ctx, kind, r, _: _expect(_attr(ctx, User, ctx.world.users["owner"].id, "role"), "contributor")),
    ("_User", "deactivate-owner"): Op(
        _update("_User", lambda ctx, kind: {"active": False}),
        lambda ctx, kind, r, _: _expect(_attr(ctx, User, ctx.world.users["owner"].id, "active"), False)),
}


async def _own_email(ctx, kind, principal, prepared):
    return await ctx.store.update(principal=principal, class_name="_User", object_id=ctx.user_id(kind),
                                  changes={"email": f"own-{kind}@example.org"})


async def _check_own_email(ctx, kind, result, prepared):
    assert await _attr(ctx, User, ctx.user_id(kind), "email") == f"own-{kind}@example.org"


OPS[("_User", "edit-own-email")] = Op(_own_email, _check_own_email)  # each principal edits itself


async def _attr(ctx: Ctx, model: type, object_id: str, attr: str) -> Any:
    return getattr(await _row(ctx, model, object_id), attr)


async def _expect(actual: Awaitable[Any], expected: Any) -> None:
    assert await actual == expected


def test_every_matrix_row_has_an_operation():
    assert {(c, o) for c, o, _ in ROWS} == set(OPS)


CLASS_NAMES = list(dict.fromkeys(c for c, _, _ in ROWS))


@pytest.mark.parametrize("class_name", CLASS_NAMES)
async def test_access_matrix(ctx: Ctx, class_name: str):
    """One world per class; its rows run top to bottom and each row's principals in ORDER.

    A row's successful writes never change what a later row expects: lists and counts come before
    the rows that add records, and the rows whose success changes access come last.
    """
    expected = {operation: cells for c, operation, cells in ROWS if c == class_name}
    actual: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for operation in expected:
        actual[operation] = await _run_row(ctx, class_name, operation, expected[operation], problems)
    assert actual == expected
    assert problems == []


async def _run_row(ctx: Ctx, class_name: str, operation: str, expected: dict[str, str],
                   problems: list[str]) -> dict[str, str]:
    op = OPS[(class_name, operation)]
    db = ctx.store.db
    actual: dict[str, str] = {}
    for kind in ORDER:
        prepared = await op.prepare(ctx, kind) if op.prepare else None
        before, refusals_before = await domain_snapshot(db), await refusal_count(db)
        outcome, result = await outcome_of(op.run(ctx, kind, ctx.world.principal(kind), prepared))
        want = expected[kind]
        where = f"{class_name} {operation} by {kind}"
        if operation in ("find", "count"):
            if outcome == "ok":
                ids = await _ids_of(ctx, class_name, want, kind)
                if operation == "count":
                    outcome = want if result == len(ids) else f"count {result} != {len(ids)}"
                else:
                    outcome = want if result == ids else f"{len(result)} ids, not exactly {want}'s {len(ids)}"
        elif outcome == "ok" and op.check is not None:
            try:
                await op.check(ctx, kind, result, prepared)
            except AssertionError as exc:
                problems.append(f"{where}: succeeded but the change is not stored: {exc}")
        actual[kind] = outcome
        if outcome not in ("ok", "P+Q", "P", "Q", "none", "all", "self"):
            if await domain_snapshot(db) != before:
                problems.append(f"{where}: refused with {outcome} but domain tables changed")
            if await refusal_count(db) <= refusals_before:
                problems.append(f"{where}: refused with {outcome} but no refusal was audited")
    return {k: actual[k] for k in KINDS}


# -- lists, counts and user views, spelled out ------------------------------------------------------
async def test_outsider_lists_and_counts_no_scores_although_scores_exist(ctx: Ctx):
    store, w = ctx.store, ctx.world
    assert await store.count(principal=w.lead, class_name="MobilityScore") == 2
    assert await store.find(principal=w.outsider, class_name="MobilityScore") == []
    assert await store.count(principal=w.outsider, class_name="MobilityScore") == 0
    where = {"patient": w.patient.id}
    assert await store.count(principal=w.outsider, class_name="MobilityScore", where=where) == 0


async def test_viewer_finds_no_session_notes(ctx: Ctx):
    store, w = ctx.store, ctx.world
    assert await store.find(principal=w.viewer, class_name="SessionNote", where={"patient": w.patient.id}) == []
    assert await store.count(principal=w.viewer, class_name="SessionNote") == 0
    assert len(await store.find(principal=w.team_contributor, class_name="SessionNote")) == 1


async def test_others_see_only_username_and_role_of_an_account(ctx: Ctx):
    store, w = ctx.store, ctx.world
    owner_id = w.users["owner"].id
    seen_by_colleague = await store.get(principal=w.team_contributor, class_name="_User", object_id=owner_id)
    assert (seen_by_colleague.username, seen_by_colleague.role) == ("owner", "therapist")
    assert seen_by_colleague.email is None and getattr(seen_by_colleague, "password_hash", None) is None
    assert (await store.get(principal=w.owner, class_name="_User", object_id=owner_id)).email == "owner@example.org"
    assert (await store.get(principal=w.lead, class_name="_User", object_id=owner_id)).email == "owner@example.org"
    listed = {u.username: u for u in await store.find(principal=w.team_contributor, class_name="_User")}
    assert listed["owner"].email is None and listed["lead"].email is None
    assert listed["team-contributor"].email == "team_contributor@example.org"
    # A ward screen (a viewer) reads no staff usernames: only its own account, whole.
    [own] = await store.find(principal=w.viewer, class_name="_User")
    assert (own.username, own.email) == ("viewer", "viewer@example.org")


async def test_unreadable_record_answers_exactly_like_a_missing_id(ctx: Ctx):
    store, w = ctx.store, ctx.world
    _, unreadable = await outcome_of(store.get(principal=w.outsider, class_name="MobilityScore",
                                               object_id=ctx.score_p.id))
    _, missing = await outcome_of(store.get(principal=w.outsider, class_name="MobilityScore",
                                            object_id="nosuchid00"))
    assert type(unreadable) is type(missing) and str(unreadable) == str(missing)


# -- a viewer's pushes ----------------------------------------------------------------------------
PRIVATE = {"noteText", "dateOfBirth", "patientId", "notes"}


async def test_viewer_pushes_never_carry_note_text_date_of_birth_or_patient_id(ctx: Ctx):
    store, w = ctx.store, ctx.world
    p = w.patient.id
    viewer_sub = mailbox(store.hub, w.viewer, [patient_topic(p)] + [class_topic(c) for c in (
        "Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory")])
    lead_sub = mailbox(store.hub, w.lead, [patient_topic(p)])

    await store.update(principal=w.lead, class_name="Patient", object_id=p,
                       changes={"dateOfBirth": datetime(1948, 5, 17, tzinfo=UTC), "mobilityStatus": "dependent"})
    await store.add_note(principal=w.owner, patient_id=p, session_type="review", text="Private words.")
    await store.record_score(principal=w.owner, patient_id=p, score_type="barthel", value=70,
                             notes="Private score note.")

    # Everything already delivered: the store publishes synchronously after each commit.
    lead_got = lead_sub.drain()
    viewer_got = viewer_sub.drain()
    # The lead, as a control, received the private fields that the viewer must not.
    assert any("dateOfBirth" in (d.data or {}) and "patientId" in (d.data or {}) for d in lead_got)
    assert any(d.class_name == "SessionNote" and "noteText" in (d.data or {}) for d in lead_got)
    # PatientActivity: the open follow-up count a note changed, never the note (checked below).
    assert {d.class_name for d in viewer_got} == {"Patient", "StatusHistory", "MobilityScore", "PatientActivity"}
    for delivery in viewer_got:
        for payload in (delivery.data or {}, delivery.before or {}):
            assert PRIVATE.isdisjoint(payload), (delivery.class_name, sorted(payload))
    patient_push = next(d for d in viewer_got if d.class_name == "Patient")
    assert patient_push.data["displayName"] == "P.E."  # initials: no lead turned full names on
    assert patient_push.data["mobilityStatus"] == "dependent"
