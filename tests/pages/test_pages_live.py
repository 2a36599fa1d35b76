"""The pages' main flows, every denial, and live updates between simulated users."""
from __future__ import annotations


from dashboard.errors import PermissionDenied
from tests.support import eventually


def _one(user, marker: str):
    elements = user.find(marker=marker).elements
    assert elements, f"nothing marked {marker}"
    return next(iter(elements))


# -- caseload ------------------------------------------------------------------------------------------
async def test_caseload_shows_only_visible_patients(pages_app):
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await owner.should_see("Pat Example")
    await owner.should_not_see("Quinn Sample")
    await owner.should_not_see("Admin")
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await lead.should_see("Pat Example")
    await lead.should_see("Quinn Sample")
    await lead.should_see("Admin")
    await lead.should_see(marker="therapist-filter")
    outsider = await pages_app.signed_in("outsider")
    await outsider.open("/")
    await outsider.should_see(marker="caseload-empty")
    await outsider.should_not_see("Pat Example")



async def test_the_caseload_row_says_the_bed(pages_app):
    w = pages_app.world
    await w.store.update(principal=w.owner, class_name="Patient", object_id=w.patient.id, changes={"bed": "Bay 4 bed 1"})
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await owner.should_see("DEMO-P · owner · Bay 4 bed 1")



async def test_caseload_search_and_status_filter(pages_app):
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    _one(lead, "status-filter").value = "independent"
    await lead.should_not_see("Pat Example")
    await lead.should_see("Quinn Sample")
    _one(lead, "status-filter").value = ""
    _one(lead, "search").value = "pat"
    await lead.should_see("Pat Example")
    await lead.should_not_see("Quinn Sample")


async def test_a_caseload_row_updates_in_place_when_someone_saves(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    row = _one(lead, f"row-{w.patient.id}")
    other_row = _one(lead, f"row-{w.other_patient.id}")
    await w.store.change_status(principal=w.owner, patient_id=w.patient.id, status="dependent", reason="fall")
    await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="berg", value=41)
    await lead.should_see("Dependent", retries=30)
    await lead.should_see("41", retries=30)
    # The same row element was refilled; its neighbour was left alone.
    assert _one(lead, f"row-{w.patient.id}") is row
    assert _one(lead, f"row-{w.other_patient.id}") is other_row


async def test_a_patient_appears_when_access_is_granted_and_goes_when_it_ends(pages_app):
    w = pages_app.world
    outsider = await pages_app.signed_in("outsider")
    await outsider.open("/")
    await outsider.should_not_see("Quinn Sample")
    await w.store.add_care_team_member(principal=w.lead, patient_id=w.other_patient.id,
                                       user_id=w.users["outsider"].id)
    await outsider.should_see("Quinn Sample", retries=30)
    await w.store.remove_care_team_member(principal=w.lead, patient_id=w.other_patient.id,
                                          user_id=w.users["outsider"].id)
    await outsider.should_not_see("Quinn Sample", retries=30)


# -- patient page: denials -------------------------------------------------------------------------------
async def test_a_patient_page_the_user_may_not_read_is_a_404_like_a_missing_one(pages_app):
    w = pages_app.world
    for name in ("other-therapist", "outsider"):
        user = await pages_app.signed_in(name)
        denied = await user.http_client.get(f"/patient/{w.patient.id}")
        missing = await user.http_client.get("/patient/doesnotexist")
        assert denied.status_code == missing.status_code == 404
        assert "Pat Example" not in denied.text and "DEMO-P" not in denied.text
    contributor = await pages_app.signed_in("team-contributor")
    assert (await contributor.http_client.get(f"/patient/{w.other_patient.id}")).status_code == 404


async def test_admin_is_a_404_for_everyone_but_a_lead(pages_app):
    for name in ("owner", "team-contributor", "viewer"):
        user = await pages_app.signed_in(name)
        assert (await user.http_client.get("/admin")).status_code == 404


async def test_a_viewer_gets_not_found_for_a_patient_page_and_cannot_write(pages_app):
    w = pages_app.world
    await w.store.add_note(principal=w.owner, patient_id=w.patient.id, session_type="treatment",
                           text="Private note text", follow_up=True)
    viewer = await pages_app.signed_in("viewer")
    # A ward screen reaches only the ward board: its own patient's page is not found, as a missing one.
    response = await viewer.http_client.get(f"/patient/{w.patient.id}")
    assert response.status_code == (await viewer.http_client.get("/patient/doesnotexist")).status_code == 404
    for hidden in ("Pat Example", "P.E.", "DEMO-P", "Private note text"):
        assert hidden not in response.text
    # Were a write attempted with the viewer's principal anyway, the store refuses it.
    try:
        await w.store.record_score(principal=w.viewer, patient_id=w.patient.id, score_type="barthel", value=50)
    except PermissionDenied:
        pass
    else:  # pragma: no cover
        raise AssertionError("a viewer wrote a score")


async def test_a_contributor_on_the_team_records_but_cannot_change_status_or_the_team(pages_app):
    w = pages_app.world
    contributor = await pages_app.signed_in("team-contributor")
    await contributor.open(f"/patient/{w.patient.id}")
    await contributor.should_see("Save score")
    await contributor.should_see("Save note")
    await contributor.should_not_see("Change status")
    await contributor.should_not_see(marker="team-add")


# -- patient page: flows ------------------------------------------------------------------------------
async def test_recording_a_score_through_the_form(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    _one(owner, "score-measure").value = "berg"
    value = _one(owner, "score-value")
    value.value = 60  # Berg is 0-56: refused on the form, nothing written
    owner.find(marker="score-save").click()
    await owner.should_see("60 is out of range: Berg Balance Scale takes a whole number from 0 to 56")
    assert await w.store.count(principal=w.lead, class_name="MobilityScore") == 0
    value.value = 44
    owner.find(marker="score-save").click()
    await owner.should_see(marker="chart-berg", retries=30)
    await owner.should_see("Berg Balance Scale")
    assert await w.store.count(principal=w.lead, class_name="MobilityScore") == 1


async def test_two_users_one_saves_and_the_other_sees_it(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open(f"/patient/{w.patient.id}")
    await lead.should_not_see(marker="chart-tug")
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("Also viewing: lead (Lead)")
    await lead.should_see("Also viewing: owner (Therapist)", retries=30)
    _one(owner, "score-measure").value = "tug"
    _one(owner, "score-value").value = 13.5
    owner.find(marker="score-save").click()
    await lead.should_see(marker="chart-tug", retries=30)
    await lead.should_see("13.5 s", retries=30)


async def test_notes_follow_ups_and_addenda(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    _one(owner, "note-text").value = "Walked <b>10 m</b> with frame"
    _one(owner, "note-follow-up").value = True
    owner.find(marker="note-save").click()
    await owner.should_see("Walked <b>10 m</b> with frame", retries=30)  # shown as text, not HTML
    await owner.should_see(marker="follow-up-flag")
    owner.find(marker="clear-follow-up").click()
    await owner.should_see("Clear the follow-up?", retries=30)  # asks first, naming the consequence
    owner.find(marker="confirm-yes").click()
    await owner.should_not_see(marker="follow-up-flag", retries=30)
    [note] = await w.store.find(principal=w.lead, class_name="SessionNote", where={"patient": w.patient.id})
    await w.store.add_note(principal=w.lead, patient_id=w.patient.id, session_type="treatment",
                           text="Correction: 12 m", amends=note.id)
    await owner.should_see("Correction: 12 m", retries=30)
    addendum = _one(owner, f"note-{note.id}")
    assert any("Correction: 12 m" in getattr(e, "text", "") for e in addendum.descendants())


async def test_status_change_needs_a_reason_and_a_conflict_is_shown_not_overwritten(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    owner.find(marker="change-status").click()
    await owner.should_see(marker="status-select")
    _one(owner, "status-select").value = "minimal_assist"
    owner.find(marker="status-save").click()
    await owner.should_see("A reason is required")
    # Meanwhile the lead changes the status.
    await w.store.change_status(principal=w.lead, patient_id=w.patient.id, status="dependent", reason="fall")
    _one(owner, "status-reason").value = "improving"
    owner.find(marker="status-save").click()
    await owner.should_see(marker="status-conflict", retries=30)
    await owner.should_see("Current: Dependent")
    patient = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
    assert patient.mobility_status == "dependent"
    # Saving again, knowingly, goes through.
    owner.find(marker="status-save").click()

    async def saved() -> bool:
        current = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
        return current.mobility_status == "minimal_assist"

    await eventually(saved)


async def test_an_open_patient_page_shows_a_notice_when_access_ends(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("Pat Example")
    await w.store.assign_therapist(principal=w.lead, patient_id=w.patient.id,
                                   therapist_id=w.users["other_therapist"].id)
    await owner.should_see(marker="access-ended", retries=30)
    await owner.should_not_see("Pat Example")


async def test_equipment_check_out_and_return_appear_on_the_board(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/equipment")
    await lead.should_see("Nothing is checked out.")
    contributor = await pages_app.signed_in("team-contributor")
    await contributor.open(f"/patient/{w.patient.id}")
    _one(contributor, "equipment-name").value = "Zimmer frame"
    contributor.find(marker="equipment-check-out").click()
    await lead.should_see("Zimmer frame", retries=30)
    await contributor.should_see(marker="equipment-return", retries=30)
    contributor.find(marker="equipment-return").click()
    await contributor.should_see(marker="confirm-yes", retries=30)
    contributor.find(marker="confirm-yes").click()
    await lead.should_see("Nothing is checked out.", retries=30)


async def test_care_team_changes_by_the_owner(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see(marker="remove-team-therapist", retries=30)  # the team (and the picker's options) loaded
    _one(owner, "team-add-select").value = w.users["outsider"].id
    owner.find(marker="team-add").click()
    await owner.should_see(marker="remove-outsider", retries=30)
    assert w.store.access.sees_patient(w.outsider, w.patient.id)


async def test_a_member_removed_elsewhere_leaves_the_list_and_is_offered_again_in_the_picker(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see(marker="remove-team-therapist", retries=30)
    pick = _one(owner, "team-add-select")
    assert w.users["team_therapist"].id not in pick.options  # on the team: not offered
    kept = _one(owner, "remove-team-contributor")  # another member's row, drawn before the removal
    await w.store.remove_care_team_member(principal=w.lead, patient_id=w.patient.id,
                                          user_id=w.users["team_therapist"].id)
    await owner.should_not_see(marker="remove-team-therapist", retries=30)
    assert _one(owner, "remove-team-contributor") is kept  # the list lost one row, it was not redrawn
    owner.find(marker="team-add-select").trigger("popupShow")  # the owner opens the picker
    await eventually(lambda: w.users["team_therapist"].id in pick.options)
    pick.value = w.users["team_therapist"].id
    owner.find(marker="team-add").click()
    await owner.should_see(marker="remove-team-therapist", retries=30)


async def test_ward_screen_shows_initials_statuses_and_no_identifiers(pages_app):
    w = pages_app.world
    await w.store.add_note(principal=w.owner, patient_id=w.patient.id, session_type="treatment",
                           text="Private note text", follow_up=True)
    viewer = await pages_app.signed_in("viewer")
    await viewer.open("/ward")
    await viewer.should_see("P.E.")
    await viewer.should_see("Supervision")
    await viewer.should_see(marker="ward-follow")  # the flag with the open follow-ups' count
    assert [label.text for label in viewer.find(marker="ward-follow").elements.pop().descendants()
            if hasattr(label, "text")] == ["1"]
    for hidden in ("Pat Example", "DEMO-P", "Private note text", "Quinn"):
        await viewer.should_not_see(hidden)
    await w.store.change_status(principal=w.owner, patient_id=w.patient.id, status="dependent", reason="x")
    await viewer.should_see("Dependent", retries=30)
    await w.store.update_user(principal=w.lead, user_id=w.users["viewer"].id, changes={"showFullNames": True})
    await viewer.open("/ward")
    await viewer.should_see("Pat Example")


async def test_admin_creates_a_user_and_assigns_a_therapist(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/admin")
    _one(lead, "new-username").value = "newstudent"
    _one(lead, "new-email").value = "student@example.org"
    _one(lead, "new-password").value = "a long password here"
    lead.find(marker="create-user").click()
    await lead.should_see(marker="user-newstudent", retries=30)
    _one(lead, f"therapist-{w.patient.id}").value = w.users["team_therapist"].id
    await lead.should_see(marker="confirm-yes", retries=30)  # reassigning asks first
    assert not w.store.access.owns(w.team_therapist, w.patient.id)
    lead.find(marker="confirm-yes").click()
    await eventually(lambda: w.store.access.owns(w.team_therapist, w.patient.id))


async def test_closing_a_page_ends_its_subscription(pages_app):
    w = pages_app.world
    hub = w.store.hub
    before = hub.subscription_count
    owner = await pages_app.signed_in("owner")
    client = await owner.open("/")
    # The caseload's feed, and the frame's watch on the session (its end sends the page to sign-in).
    assert hub.subscription_count == before + 2
    client.delete()
    assert hub.subscription_count == before


async def test_an_open_equipment_board_leaves_quietly_when_its_session_is_revoked(pages_app):
    """A lead resets the therapist's password while the therapist's equipment board is open: the
    board's refresh meets the ended session; the page goes to sign-in, and nothing is logged as an error."""
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open("/equipment")
    await owner.should_see("Nothing is checked out.")
    ended = await w.store.accounts.reset_password(principal=w.lead, user_id=w.users["owner"].id,
                                                  temporary_password="a brand new temporary phrase 42")
    assert ended >= 1
    await owner.should_see("Sign in", retries=50)
