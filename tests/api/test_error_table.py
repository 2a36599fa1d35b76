"""Every row of PARSE-API.md's error table, through the REST API."""
from __future__ import annotations

import httpx

from dashboard.rate_limit import LoginLimiter

from tests.api.conftest import APP_ID, PASSWORD, make_app, signed_in
from tests.api.test_rest import pointer, score_body


async def test_not_found_and_not_readable_are_the_same_101(api):
    missing = await api.call("GET", "classes/Patient/nosuchid00", "other_therapist")
    hidden = await api.call("GET", f"classes/Patient/{api.world.patient.id}", "other_therapist")
    assert missing.status_code == hidden.status_code == 404
    assert missing.json() == hidden.json() == {"code": 101, "error": "Object not found."}
    r = await api.call("PUT", f"classes/Patient/{api.world.patient.id}", "other_therapist", json={"displayName": "x"})
    assert r.status_code == 404 and r.json()["code"] == 101


async def test_wrong_username_or_password_101(api):
    for body in ({"username": "lead", "password": "wrong password!"}, {"username": "ghost", "password": "whatever123"}):
        r = await api.call("POST", "login", json=body)
        assert r.status_code == 404 and r.json() == {"code": 101, "error": "Invalid username/password."}


async def test_locked_account_101_says_locked_and_for_how_long(world):
    import dataclasses

    world.store.settings = dataclasses.replace(world.store.settings, lockout_attempts=3)
    app = make_app(world.store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-Parse-Application-Id": APP_ID}
        answers = [await client.post("/parse/login", json={"username": "owner", "password": "bad password!"},
                                     headers=headers) for _ in range(4)]
        r = await client.post("/parse/login", json={"username": "owner", "password": PASSWORD}, headers=headers)
    assert all(a.json()["code"] == 101 for a in answers)
    assert r.status_code == 404 and r.json()["code"] == 101
    assert "locked" in r.json()["error"] and "minute" in r.json()["error"]


async def test_username_and_email_taken_202_203(api):
    r = await api.call("POST", "users", json={"username": "OWNER", "password": "long enough pass", "email": "x@example.org"})
    assert r.status_code == 400 and r.json()["code"] == 202
    r = await api.call("POST", "users", json={"username": "fresh-one", "password": "long enough pass", "email": "owner@example.org"})
    assert r.status_code == 400 and r.json()["code"] == 203


async def test_weak_password_142(api):
    r = await api.call("POST", "users", json={"username": "weak-one", "password": "short", "email": "w@example.org"})
    assert r.status_code == 400 and r.json()["code"] == 142 and "password" in r.json()["error"]


async def test_bad_sessions_209(api):
    for token in ("r:not-a-real-token", "x" * 300):
        r = await api.client.get("/parse/classes/Patient", headers={**api.headers(), "X-Parse-Session-Token": token})
        assert r.status_code == 401 and r.json()["code"] == 209
    r = await api.call("GET", "classes/Patient")  # no session at all
    assert r.status_code == 401 and r.json()["code"] == 209
    # Expired: the store's clock moves past the session's idle limit.
    store = api.store
    original = store.clock
    try:
        store.clock = lambda: original() + store.settings.session_lifetime
        r = await api.call("GET", "classes/Patient", "lead")
        assert r.status_code == 401 and r.json()["code"] == 209
    finally:
        store.clock = original
    # Logged out: the token is dead.
    r = await api.call("POST", "logout", "outsider")
    assert r.status_code == 200
    r = await api.call("GET", "users/me", "outsider")
    assert r.status_code == 401 and r.json()["code"] == 209


async def test_permission_denied_119(api):
    pid = api.world.patient.id
    r = await api.call("PUT", f"classes/Patient/{pid}", "team_contributor", json={"displayName": "x"})
    assert r.status_code == 403 and r.json() == {"code": 119, "error": "displayName: only a lead or the owning therapist may change it"}
    r = await api.call("POST", "classes/MobilityScore", "viewer", json=score_body(pid))
    assert r.status_code == 403 and r.json()["code"] == 119
    for class_name in ("_Session", "_Role", "Secret", "AuditEvent"):
        r = await api.call("GET", f"classes/{class_name}", "lead")
        assert r.status_code == 403 and r.json()["code"] == 119, class_name


async def test_invalid_query_102_json_107_type_111_missing_142(api):
    r = await api.call("GET", "classes/Patient", "lead", params={"where": '{"displayName":{"$near":1}}'})
    assert r.status_code == 400 and r.json()["code"] == 102
    r = await api.call("GET", "classes/Patient", "lead", params={"bogus": "1"})
    assert r.status_code == 400 and r.json()["code"] == 102
    r = await api.call("POST", "classes/Patient", "lead", content=b'{"displayName": ')
    assert r.status_code == 400 and r.json()["code"] == 107
    r = await api.call("POST", "classes/Patient", "lead", json={
        "patientId": "T-1", "displayName": "T", "mobilityStatus": "independent",
        "primaryTherapist": pointer("_User", api.world.owner.user_id), "dateOfBirth": "1950-01-01"})
    assert r.status_code == 400 and r.json()["code"] == 111 and "dateOfBirth" in r.json()["error"]
    r = await api.call("POST", "classes/Patient", "lead", json={
        "patientId": "T-1", "mobilityStatus": "independent", "primaryTherapist": pointer("_User", api.world.owner.user_id)})
    assert r.status_code == 400 and r.json()["code"] == 142 and "displayName" in r.json()["error"]


async def test_rate_limited_429_per_account_and_per_address(world):
    # The store's one limiter serves every channel; this test gives it small limits.
    world.store.sign_in_limiter = LoginLimiter(3, 5)
    app = make_app(world.store)
    headers = {"X-Parse-Application-Id": APP_ID}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.7", 1)),
                                 base_url="http://t") as client:
        answers = [await client.post("/parse/login", json={"username": "owner", "password": PASSWORD}, headers=headers)
                   for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[-1].json()["code"] == 100 and int(answers[-1].headers["retry-after"]) >= 1
        # Another account from the same address: allowed until the address's own limit.
        more = [await client.post("/parse/login", json={"username": "lead", "password": PASSWORD}, headers=headers)
                for _ in range(2)]
        assert [a.status_code for a in more] == [200, 429]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.8", 1)),
                                 base_url="http://t") as other:
        r = await other.post("/parse/login", json={"username": "lead", "password": PASSWORD}, headers=headers)
        assert r.status_code == 200
        r = await other.post("/parse/login", json={"username": "owner", "password": PASSWORD}, headers=headers)
        assert r.status_code == 429  # the account is limited whatever the address
        # ... and whatever its spelling (H2: case, full-width forms, LIKE wildcards are one account).
        for spelling in ("OWNER", "ｏｗｎｅｒ", "owne_", "owner%"):
            r = await other.post("/parse/login", json={"username": spelling, "password": PASSWORD}, headers=headers)
            assert r.status_code in (429, 404) and r.json()["code"] in (100, 101), spelling
            assert "sessionToken" not in r.json()


async def test_tokens_fixture_is_independent(world):
    app = make_app(world.store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        tokens = await signed_in(client, world)
    assert len(set(tokens.values())) == len(tokens)


def test_parse_code_names_carry_parse_error_numbers():
    """The names this project sends, against Parse.Error's numbers (Parse's own error-code table)."""
    from dashboard.errors import LiveQueryCode, ParseCode

    parse = {"INTERNAL_SERVER_ERROR": 1, "CONNECTION_FAILED": 100, "OBJECT_NOT_FOUND": 101, "INVALID_QUERY": 102,
             "INVALID_KEY_NAME": 105, "INVALID_JSON": 107, "INCORRECT_TYPE": 111, "OBJECT_TOO_LARGE": 116,
             "OPERATION_FORBIDDEN": 119, "INVALID_EMAIL_ADDRESS": 125, "DUPLICATE_VALUE": 137,
             "VALIDATION_ERROR": 142, "REQUEST_LIMIT_EXCEEDED": 155, "DUPLICATE_REQUEST": 159,
             "USERNAME_TAKEN": 202, "EMAIL_TAKEN": 203, "INVALID_SESSION_TOKEN": 209, "UNSUPPORTED_SERVICE": 252}
    assert {name: ParseCode[name] for name in parse} == parse
    assert len(ParseCode.__members__) == len(ParseCode)  # no number under two names (an alias)
    assert [int(c) for c in LiveQueryCode] == [1, 2, 3, 4]
