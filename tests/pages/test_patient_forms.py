"""The patient page's forms, as a user would notice them: nothing cut silently, back-dating and a
comment on a score, a "change" to the same status refused, errors under the field that is wrong."""
from __future__ import annotations

from datetime import date, timedelta

from tests.support import eventually


def _one(user, marker: str):
    elements = user.find(marker=marker).elements
    assert elements, f"nothing marked {marker}"
    return next(iter(elements))


async def test_a_reason_over_its_limit_is_refused_under_the_field_and_kept_whole(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    owner.find(marker="change-status").click()
    await owner.should_see(marker="status-reason")
    _one(owner, "status-select").value = "dependent"
    reason = _one(owner, "status-reason")
    long_reason = "r" * 2001
    reason.value = long_reason
    owner.find(marker="status-save").click()
    await owner.should_see("At most 2,000 characters: this has 2,001. Shorten it to save.")
    assert reason.value == long_reason  # not cut
    assert reason.props.get("counter") is True  # the count shows as it is typed
    patient = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
    assert patient.mobility_status == "supervision"


async def test_a_change_to_the_same_status_is_refused_under_the_status(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    owner.find(marker="change-status").click()
    await owner.should_see(marker="status-reason")
    _one(owner, "status-reason").value = "no change really"
    owner.find(marker="status-save").click()
    await owner.should_see("This is already the current status: choose another")
    history = await w.store.find(principal=w.lead, class_name="StatusHistory", where={"patient": w.patient.id})
    assert len(history) == 1  # only the admission


async def test_a_back_dated_score_with_a_comment_is_saved_as_entered(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    when = date.today() - timedelta(days=3)
    _one(owner, "score-measure").value = "berg"
    _one(owner, "score-value").value = 38
    _one(owner, "score-date").value = when.isoformat()
    _one(owner, "score-comment").value = "Tested in the day room"
    owner.find(marker="score-save").click()

    async def saved() -> bool:
        return bool(await w.store.find(principal=w.lead, class_name="MobilityScore", where={"patient": w.patient.id}))

    await eventually(saved)
    [score] = await w.store.find(principal=w.lead, class_name="MobilityScore", where={"patient": w.patient.id})
    assert score.score_value == 38 and score.notes == "Tested in the day room"
    assert score.score_date.astimezone().date() == when
    await owner.should_see("Tested in the day room", retries=30)  # the comment shows in the list
    # The form cleared quietly for the next one; the date is today again.
    assert _one(owner, "score-value").value is None and _one(owner, "score-value").error is None
    assert _one(owner, "score-date").value == date.today().isoformat()


async def test_a_future_date_and_a_note_over_its_limit_are_refused_where_typed(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    _one(owner, "score-value").value = 50
    _one(owner, "score-date").value = (date.today() + timedelta(days=1)).isoformat()
    owner.find(marker="score-save").click()
    await owner.should_see("Cannot be in the future")
    text = _one(owner, "note-text")
    text.value = "n" * 20_001
    owner.find(marker="note-save").click()
    await owner.should_see("At most 20,000 characters: this has 20,001. Shorten it to save.")
    assert len(text.value) == 20_001
    assert await w.store.count(principal=w.lead, class_name="MobilityScore") == 0
    assert await w.store.count(principal=w.lead, class_name="SessionNote") == 0


async def test_a_push_leaves_the_caseload_search_and_filters_as_typed(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    search, status = _one(lead, "search"), _one(lead, "status-filter")
    search.value = "pat"
    await lead.should_not_see("Quinn Sample")
    await w.store.change_status(principal=w.owner, patient_id=w.patient.id, status="dependent", reason="fall")
    await lead.should_see("Dependent", retries=30)
    # The same input elements, still holding what was typed and picked; the list followed the push.
    assert _one(lead, "search") is search and search.value == "pat"
    assert _one(lead, "status-filter") is status
    await lead.should_not_see("Quinn Sample")
