"""A viewer (a ward screen) reaches only the ward board (issue 16): every other page and download is
"not found" for it, the answer for an unknown address, never a redirect to sign in (that would
confirm the page); signing in lands it on the board; the board's pushes show no free text and no
staff username. Staff still reach every page, so the rule cannot pass by answering 404 to everyone."""
from __future__ import annotations

from datetime import date

from dashboard.security_headers import NOT_FOUND_HTML
from tests.support import PASSWORD


def not_ward_pages(pid: str) -> list[str]:
    return ["/", f"/patient/{pid}", f"/patient/{pid}/report", f"/patient/{pid}/report.pdf", "/equipment",
            "/admin", "/audit", "/audit/export.csv", "/account", "/caseload.csv"]


async def test_a_viewer_gets_not_found_for_every_page_but_the_ward(pages_app):
    w = pages_app.world
    viewer = await pages_app.signed_in("viewer")
    for path in not_ward_pages(w.patient.id):
        response = await viewer.http_client.get(path)
        assert response.status_code == 404, path  # not 303 to the sign-in: nothing says the page exists
        for shown in ("Pat Example", "P.E.", "DEMO-P"):
            assert shown not in response.text, (path, shown)
    assert (await viewer.http_client.get("/no-such-page")).status_code == 404
    ward = await viewer.http_client.get("/ward")
    assert ward.status_code == 200 and "P.E." in ward.text


async def test_staff_still_reach_those_pages(pages_app):
    w = pages_app.world
    lead = await pages_app.signed_in("lead")
    for path in not_ward_pages(w.patient.id):
        response = await lead.http_client.get(path)
        assert response.status_code == 200, path
    assert "Pat Example" in (await lead.http_client.get(f"/patient/{w.patient.id}")).text  # what a 404 must hide
    owner = await pages_app.signed_in("owner")  # a therapist, the patient's own
    for path in ("/", f"/patient/{w.patient.id}", f"/patient/{w.patient.id}/report",
                 f"/patient/{w.patient.id}/report.pdf", "/equipment", "/account", "/caseload.csv", "/ward"):
        response = await owner.http_client.get(path)
        assert response.status_code == 200, path


async def test_a_viewer_signing_in_lands_on_the_ward(pages_app):
    w = pages_app.world
    for next_path in ("/", f"/patient/{w.patient.id}", "/equipment", "/account", "/ward"):
        user = pages_app.new_user()
        response = await user.http_client.post("/login", data={"username": "viewer", "password": PASSWORD,
                                                               "next": next_path})
        assert (response.status_code, response.headers["location"]) == (303, "/ward"), next_path
        assert (await user.http_client.get(response.headers["location"])).status_code == 200
    scripted = await pages_app.new_user().http_client.post(
        "/login", data={"username": "viewer", "password": PASSWORD}, headers={"Accept": "application/json"})
    assert (scripted.status_code, scripted.json()) == (200, {"next": "/ward"})
    owner = await pages_app.new_user().http_client.post("/login", data={"username": "owner", "password": PASSWORD,
                                                                         "next": "/equipment"})
    assert owner.headers["location"] == "/equipment"  # the control: others go where they asked


async def test_the_not_found_pages_way_back_leads_each_account_to_its_start(pages_app):
    """The 404's link goes to /login: a signed-in viewer on to its board (not to "/", another 404),
    staff to the caseload, and someone signed out to the sign-in form."""
    assert 'href="/login">Back to OT Tracker' in NOT_FOUND_HTML  # the served app's one 404
    viewer = await pages_app.signed_in("viewer")
    for path in ("/login", "/signup"):
        back = await viewer.http_client.get(path)
        assert (back.status_code, back.headers["location"]) == (303, "/ward"), path
    owner = await pages_app.signed_in("owner")
    back = await owner.http_client.get("/login")
    assert (back.status_code, back.headers["location"]) == (303, "/")
    assert (await pages_app.new_user().http_client.get("/login")).status_code == 200


async def test_a_viewer_whose_password_was_reset_can_still_choose_a_new_one(pages_app):
    w = pages_app.world
    temporary = "a temporary passphrase 42"
    await w.store.accounts.reset_password(principal=w.lead, user_id=w.users["viewer"].id, temporary_password=temporary)
    viewer = pages_app.new_user()
    response = await viewer.http_client.post("/login", data={"username": "viewer", "password": temporary})
    assert (response.status_code, response.headers["location"]) == (303, "/account")
    ward = await viewer.http_client.get("/ward")
    assert (ward.status_code, ward.headers["location"]) == (303, "/account")
    await viewer.open("/account")
    await viewer.should_see("A lead reset your password")
    await viewer.should_not_see("Where you are signed in")


async def test_the_ward_boards_pushes_show_no_free_text_and_no_username(pages_app):
    w, p = pages_app.world, pages_app.world.patient.id
    viewer = await pages_app.signed_in("viewer")
    await viewer.open("/ward")
    await viewer.should_see("P.E.")
    score = await w.store.record_score(principal=w.team_contributor, patient_id=p, score_type="berg", value=41,
                                       notes="Held the rail at item 12")
    await w.store.mark_score_in_error(principal=w.lead, score_id=score.id, reason="Entered on the wrong patient")
    await w.store.check_out_equipment(principal=w.team_therapist, patient_id=p, name="Walker")
    await w.store.change_status(principal=w.owner, patient_id=p, status="dependent", reason="Slipped in the bathroom")
    await viewer.should_see("Dependent", retries=30)  # the last push has arrived, and those before it
    for hidden in ("Held the rail", "Entered on the wrong patient", "Slipped in the bathroom", "owner",
                   "team-contributor", "team-therapist"):
        await viewer.should_not_see(hidden)
    await w.store.discharge_patient(principal=w.lead, patient_id=p, reason="Home with carers", date=date.today())
    await viewer.should_not_see(marker=f"ward-{p}", retries=50)  # gone from the board
    await viewer.should_not_see("Home with carers")
