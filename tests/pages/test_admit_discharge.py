"""Admitting, editing and discharging in the app, as users notice it: the dialogs for those the
store allows, errors under the field with what was typed kept, and the caseloads of others updated
without a reload."""
from __future__ import annotations

from datetime import date, timedelta

from tests.support import domain_snapshot, eventually


def _one(user, marker: str):
    elements = user.find(marker=marker).elements
    assert elements, f"nothing marked {marker}"
    return next(iter(elements))


async def _admit_form(user, *, patient_id: str, name: str, therapist_id: str | None = None) -> None:
    user.find(marker="admit-patient").click()
    await user.should_see(marker="admit-dialog")
    _one(user, "admit-patient-id").value = patient_id
    _one(user, "admit-name").value = name
    _one(user, "admit-birth").value = "1948-05-17"
    _one(user, "admit-status").value = "moderate_assist"
    if therapist_id is not None:
        _one(user, "admit-therapist").value = therapist_id


async def test_a_lead_admits_and_the_patient_appears_on_the_therapists_open_caseload(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await owner.should_see("Pat Example")
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await _admit_form(lead, patient_id="NEW-7", name="Nora Newcomer", therapist_id=w.users["owner"].id)
    dialog = _one(lead, "admit-dialog")
    assert dialog.props.get("aria-labelledby")  # named by its title
    lead.find(marker="admit-save").click()
    await owner.should_see("Nora Newcomer", retries=50)  # live, no reload
    await lead.should_see("Nora Newcomer", retries=50)
    [row] = [r for r in await w.store.caseload(principal=w.lead) if r.display_name == "Nora Newcomer"]
    assert (row.patient_number, row.mobility_status, row.primary_therapist_id) == (
        "NEW-7", "moderate_assist", w.users["owner"].id)
    other = await pages_app.signed_in("other-therapist")
    await other.open("/")
    await other.should_not_see("Nora Newcomer")


async def test_a_duplicate_identifier_and_a_huge_name_are_said_under_their_fields_and_kept(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    before = await domain_snapshot(w.store.db)
    await _admit_form(lead, patient_id="DEMO-P", name="Dana Duplicate", therapist_id=w.users["owner"].id)
    lead.find(marker="admit-save").click()
    await lead.should_see("already belongs to another patient", retries=50)
    assert _one(lead, "admit-patient-id").error == "already belongs to another patient"
    assert _one(lead, "admit-name").value == "Dana Duplicate"
    huge = "N" * 1_000_000
    _one(lead, "admit-patient-id").value = "NEW-8"
    _one(lead, "admit-name").value = huge
    lead.find(marker="admit-save").click()
    await lead.should_see("At most 200 characters: this has 1,000,000. Shorten it to save.", retries=50)
    assert _one(lead, "admit-name").value == huge and _one(lead, "admit-patient-id").value == "NEW-8"
    assert await domain_snapshot(w.store.db) == before


async def test_only_leads_and_therapists_get_the_admit_button_and_a_therapist_admits_as_itself(pages_app):
    w = pages_app.world
    for username in ("team-contributor", "outsider"):
        user = await pages_app.signed_in(username)
        await user.open("/")
        await user.should_not_see(marker="admit-patient")
    ward = await pages_app.signed_in("viewer")  # a ward screen reaches only the ward board
    assert (await ward.http_client.get("/")).status_code == 404
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await _admit_form(owner, patient_id="OWN-1", name="Olive Own")
    therapist = _one(owner, "admit-therapist")
    assert therapist.value == w.users["owner"].id and not therapist.enabled
    owner.find(marker="admit-save").click()
    await owner.should_see("Olive Own", retries=50)


async def test_a_discharge_with_a_future_date_is_refused_then_the_patient_leaves_open_caseloads(pages_app):
    w = pages_app.world
    p = w.patient.id
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await owner.should_see("Pat Example")
    ward = await pages_app.signed_in("viewer")
    await ward.open("/ward")
    await ward.should_see(marker=f"ward-{p}")
    lead = await pages_app.signed_in("lead")
    await lead.open(f"/patient/{p}")
    lead.find(marker="discharge").click()
    await lead.should_see(marker="discharge-dialog")
    _one(lead, "discharge-reason").value = "Home with carers"
    _one(lead, "discharge-date").value = (date.today() + timedelta(days=2)).isoformat()
    lead.find(marker="discharge-save").click()
    await lead.should_see("Cannot be in the future")
    assert _one(lead, "discharge-reason").value == "Home with carers"
    assert not (await w.store.get(principal=w.lead, class_name="Patient", object_id=p)).archived
    _one(lead, "discharge-date").value = date.today().isoformat()
    lead.find(marker="discharge-save").click()
    await lead.should_see(marker="discharged-banner", retries=50)
    await lead.should_see(f"Discharged on {date.today().strftime('%d %b %Y')}: Home with carers")
    await lead.should_not_see(marker="discharge")
    await owner.should_not_see("Pat Example", retries=50)  # gone from the open caseload
    await ward.should_not_see(marker=f"ward-{p}", retries=50)  # and from the ward screen
    _one(owner, "admission-filter").value = "discharged"
    await owner.should_see("Pat Example", retries=50)
    await owner.should_see("Home with carers")


async def test_the_owner_edits_the_profile_and_cannot_discharge(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_not_see(marker="discharge")
    owner.find(marker="edit-profile").click()
    await owner.should_see(marker="profile-dialog")
    await owner.should_not_see(marker="profile-patient-id")  # a lead's field
    _one(owner, "profile-name").value = "Patricia Example"
    _one(owner, "profile-birth").value = "1950-02-03"
    owner.find(marker="profile-save").click()

    async def saved() -> bool:
        p = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
        return p.display_name == "Patricia Example"

    await eventually(saved)
    p = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
    assert p.date_of_birth.date() == date(1950, 2, 3)
    await owner.should_see("Patricia Example", retries=50)
    member = await pages_app.signed_in("team-contributor")
    await member.open(f"/patient/{w.patient.id}")
    await member.should_not_see(marker="edit-profile")
    await member.should_not_see(marker="discharge")
    ward = await pages_app.signed_in("viewer")  # a ward screen reaches only the ward board
    assert (await ward.http_client.get(f"/patient/{w.patient.id}")).status_code == 404


async def test_a_lead_changing_the_identifier_to_a_taken_one_is_told_under_the_field(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open(f"/patient/{w.patient.id}")
    lead.find(marker="edit-profile").click()
    await lead.should_see(marker="profile-dialog")
    _one(lead, "profile-patient-id").value = "DEMO-Q"
    lead.find(marker="profile-save").click()
    await lead.should_see("already belongs to another patient", retries=50)
    assert _one(lead, "profile-patient-id").value == "DEMO-Q"
    p = await w.store.get(principal=w.lead, class_name="Patient", object_id=w.patient.id)
    assert p.patient_id == "DEMO-P"


async def test_a_push_to_the_caseload_keeps_the_open_admit_dialog_and_what_was_typed(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await _admit_form(lead, patient_id="TYP-1", name="Half Typed")
    name = _one(lead, "admit-name")

    def row_says(text: str) -> bool:
        return any(text in str(getattr(d, "text", "")) for d in _one(lead, f"row-{w.patient.id}").descendants())

    assert not row_says("Dependent")
    await w.store.change_status(principal=w.owner, patient_id=w.patient.id, status="dependent", reason="fall")
    await eventually(lambda: row_says("Dependent"))  # the row was refreshed by the push
    assert _one(lead, "admit-name") is name and name.value == "Half Typed"
    assert _one(lead, "admit-dialog").value is True  # still open


async def test_an_open_profile_dialog_closes_when_access_to_the_patient_ends(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    owner.find(marker="edit-profile").click()
    await owner.should_see(marker="profile-dialog")
    await w.store.assign_therapist(principal=w.lead, patient_id=w.patient.id,
                                   therapist_id=w.users["other_therapist"].id)
    await owner.should_see(marker="access-ended", retries=50)
    await owner.should_not_see(marker="profile-dialog")
    await owner.should_not_see("Pat Example")
