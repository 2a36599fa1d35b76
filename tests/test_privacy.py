"""A ward screen (viewer) never receives identifiers, dates of birth or free text through any read."""
from __future__ import annotations

import pytest

from dashboard.errors import NotFound


async def test_viewer_reads_of_a_patient_carry_no_identifier_birth_date_or_full_name(world):
    store = world.store
    got = await store.get(principal=world.viewer, class_name="Patient", object_id=world.patient.id)
    listed = await store.find(principal=world.viewer, class_name="Patient")
    for patient in (got, *listed):
        assert patient.patient_id is None and patient.date_of_birth is None
        assert patient.display_name == "P.E."
    # The stored row is untouched, and others still see it whole.
    lead_view = await store.get(principal=world.lead, class_name="Patient", object_id=world.patient.id)
    assert lead_view.patient_id == "DEMO-P" and lead_view.display_name == "Pat Example"


async def test_viewer_sees_full_names_only_once_a_lead_turns_them_on(world):
    store = world.store
    await store.update_user(principal=world.lead, user_id=world.viewer.user_id, changes={"showFullNames": True})
    got = await store.get(principal=world.viewer, class_name="Patient", object_id=world.patient.id)
    assert got.display_name == "Pat Example" and got.patient_id is None


async def test_viewer_reads_of_scores_drop_the_free_text(world):
    store = world.store
    await store.record_score(principal=world.owner, patient_id=world.patient.id, score_type="berg",
                             value=40, notes="Mentioned a fall at home last week")
    (score,) = await store.find(principal=world.viewer, class_name="MobilityScore")
    assert score.score_value == 40 and score.notes is None


async def test_viewer_cannot_filter_on_the_hospital_identifier(world):
    with pytest.raises(Exception) as refused:
        await world.store.find(principal=world.viewer, class_name="Patient", where={"patientId": "DEMO-P"})
    assert getattr(refused.value, "field", None) == "patientId"


@pytest.mark.parametrize("object_id", ["x" * 17, "y" * 5000])
async def test_an_over_long_id_is_not_found_and_still_audited(world, object_id):
    before = len(await world.store.audit_trail(principal=world.lead, limit=1000))
    with pytest.raises(NotFound):
        await world.store.get(principal=world.owner, class_name="Patient", object_id=object_id)
    assert len(await world.store.audit_trail(principal=world.lead, limit=1000)) == before + 1


async def test_a_new_follow_up_reaches_the_ward_screen_as_a_count_without_the_note(world):
    from dashboard.hub import class_topic
    from tests.support import mailbox

    store = world.store
    ward = mailbox(store.hub, world.viewer, [class_topic(c) for c in ("SessionNote", "PatientActivity")])
    await store.add_note(principal=world.owner, patient_id=world.patient.id, session_type="review",
                         text="Daughter worried about stairs at home", follow_up=True)
    # Published in the writing step: what the note caused is in the mailbox now.
    (delivery,) = ward.drain()  # the note itself never reaches a viewer
    assert delivery.class_name == "PatientActivity"
    assert delivery.data == {"className": "PatientActivity", "objectId": world.patient.id,
                             "openFollowUps": 1, "equipmentOut": 0}
    (row,) = await store.caseload(principal=world.viewer)
    assert row.open_follow_ups == 1
