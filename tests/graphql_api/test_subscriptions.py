"""GraphQL subscriptions over graphql-transport-ws at ws://SERVER/graphql (GRAPHQL.md §9): the
protocol and its close codes, events per subscriber and their access, and the session's end.

Waits are receives with timeouts; "nothing arrives" is shown by a later event that must arrive on
the same socket arriving first (ordering, not sleeping).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dashboard.api.graphql import subscriptions
from dashboard.api.graphql.names import to_global_id
from tests.api.conftest import APP_ID

TIMEOUT = 5
PROTOCOL = "graphql-transport-ws"
SCORE_FIELDS = "event id objectId node { objectId scoreValue enteredInError } originalNode { objectId enteredInError }"


def graphql_url(lq_url: str) -> str:
    return lq_url.removesuffix("/parse") + "/graphql"


class Socket:
    def __init__(self, ws):
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """The server closes the socket before sending anything more: its close code and reason."""
        try:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as closed:
            frame = closed.rcvd
            return (frame.code, frame.reason) if frame is not None else (None, "")
        raise AssertionError(f"expected the socket to close, got: {message}")

    async def subscribe(self, id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        await self.send({"id": id, "type": "subscribe", "payload": payload})

    async def event(self, id: str | None = None) -> dict[str, Any]:
        """The next message, which must be a `next` (for `id`, when given): its data's root field."""
        message = await self.recv()
        assert message["type"] == "next" and "errors" not in message["payload"], message
        if id is not None:
            assert message["id"] == id, message
        (value,) = message["payload"]["data"].values()
        return {"sub": message["id"], **value}


async def opened(url: str, **kwargs: Any) -> Socket:
    return Socket(await connect(url, subprotocols=[PROTOCOL], **kwargs))


async def acked(url: str, token: str | None, **payload: Any) -> Socket:
    socket = await opened(url)
    init: dict[str, Any] = {"X-Parse-Application-Id": APP_ID, **payload}
    if token is not None:
        init["X-Parse-Session-Token"] = token
    await socket.send({"type": "connection_init", "payload": init})
    assert await socket.recv() == {"type": "connection_ack"}
    return socket


async def settled(socket: Socket) -> None:
    """Every message sent before this one has been handled: a ping's pong comes after them."""
    await socket.send({"type": "ping"})
    assert await socket.recv() == {"type": "pong"}


def pinned(world) -> str:
    """A where on the world's patient P, by pointer equality (the way clients generated from Parse say it)."""
    return f'patient: {{ have: {{ objectId: {{ equalTo: "{world.patient.id}" }} }} }}'


async def test_a_create_reaches_who_may_read_it_shaped_for_them_and_nobody_else(api, lq_url):
    w = api.world
    url = graphql_url(lq_url)
    query = ("subscription { mobilityScores { event id objectId node { objectId scoreValue notes "
             "patient { objectId displayName } recordedBy { username } } originalNode { objectId } } }")
    owner = await acked(url, api.tokens["owner"])
    viewer = await acked(url, api.tokens["viewer"])
    other = await acked(url, api.tokens["other_therapist"])  # Q's therapist, not on P's team
    for socket in (owner, viewer, other):
        await socket.subscribe("s", query)
        await settled(socket)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                         value=55, notes="private note")
    event = await owner.event("s")
    assert event == {"sub": "s", "event": "CREATE", "id": to_global_id("MobilityScore", score.id), "objectId": score.id,
                     "originalNode": None, "node": {
                         "objectId": score.id, "scoreValue": 55, "notes": "private note",
                         "patient": {"objectId": w.patient.id, "displayName": "Pat Example"},
                         "recordedBy": {"username": "lead"}}}
    assert (await viewer.event("s"))["node"]["notes"] is None  # a ward screen gets no note text
    # The other therapist may not read P's score: its first event is the later one on its own patient Q.
    mine = await api.store.record_score(principal=w.lead, patient_id=w.other_patient.id, score_type="berg", value=20)
    event = await other.event("s")
    assert (event["event"], event["objectId"]) == ("CREATE", mine.id)
    assert event["node"]["patient"] == {"objectId": w.other_patient.id, "displayName": "Quinn Sample"}


async def test_the_root_id_is_the_relay_global_id(api, lq_url):
    w = api.world
    owner = await acked(graphql_url(lq_url), api.tokens["owner"])
    await owner.subscribe("1", f"subscription {{ mobilityScores(where: {{ {pinned(w)} }}) {{ id objectId }} }}")
    await settled(owner)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=30)
    assert await owner.event("1") == {"sub": "1", "id": to_global_id("MobilityScore", score.id), "objectId": score.id}


async def test_where_and_events_filter_what_is_sent(api, lq_url):
    w = api.world
    owner = await acked(graphql_url(lq_url), api.tokens["owner"])
    patient_id = to_global_id("Patient", w.patient.id)  # either form of id names the patient
    await owner.subscribe("high", f"subscription {{ mobilityScores(where: {{ {pinned(w)}, scoreValue: "
                                  f"{{ greaterThan: 45 }} }}) {{ {SCORE_FIELDS} }} }}")
    await owner.subscribe("updates", "subscription S($where: MobilityScoreWhereInput) { mobilityScores("
                                     f"where: $where, events: [UPDATE]) {{ {SCORE_FIELDS} }} }}",
                          {"where": {"patient": {"have": {"id": {"equalTo": patient_id}}}}})
    await settled(owner)
    await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=40)
    high = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=70)
    # Neither the low score (where) nor any CREATE on "updates" (events) came before this one.
    event = await owner.event()
    assert (event["sub"], event["event"], event["objectId"]) == ("high", "CREATE", high.id)
    await api.store.mark_score_in_error(principal=w.lead, score_id=high.id, reason="typo")
    events = sorted([await owner.event(), await owner.event()], key=lambda e: e["sub"])
    assert [(e["sub"], e["event"], e["node"]["enteredInError"], e["originalNode"]["enteredInError"])
            for e in events] == [("high", "UPDATE", True, False), ("updates", "UPDATE", True, False)]


async def test_update_enter_and_leave_follow_the_where(api, lq_url):
    w = api.world
    owner = await acked(graphql_url(lq_url), api.tokens["owner"])
    await owner.subscribe("valid", f"subscription {{ mobilityScores(where: {{ {pinned(w)}, enteredInError: "
                                   f"{{ equalTo: false }} }}) {{ {SCORE_FIELDS} }} }}")
    await owner.subscribe("errors", f"subscription {{ mobilityScores(where: {{ {pinned(w)}, enteredInError: "
                                    f"{{ equalTo: true }} }}) {{ {SCORE_FIELDS} }} }}")
    await owner.subscribe("patient", f'subscription {{ patients(where: {{ objectId: {{ equalTo: "{w.patient.id}" }} }}) '
                                     "{ event objectId node { mobilityStatus } originalNode { mobilityStatus } } }")
    await settled(owner)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=33)
    event = await owner.event("valid")
    assert (event["event"], event["objectId"]) == ("CREATE", score.id)
    await api.store.mark_score_in_error(principal=w.lead, score_id=score.id, reason="wrong patient")
    events = {e["sub"]: e for e in [await owner.event(), await owner.event()]}
    # Still readable, no longer matching: LEAVE with the record after the change and the one before.
    assert events["valid"]["event"] == "LEAVE"
    assert events["valid"]["node"] == {"objectId": score.id, "scoreValue": 33, "enteredInError": True}
    assert events["valid"]["originalNode"] == {"objectId": score.id, "enteredInError": False}
    assert events["errors"]["event"] == "ENTER"
    assert (events["errors"]["node"]["enteredInError"], events["errors"]["originalNode"]["enteredInError"]) == (True, False)
    await api.store.change_status(principal=w.owner, patient_id=w.patient.id, status="independent", reason=None)
    event = await owner.event("patient")
    assert event == {"sub": "patient", "event": "UPDATE", "objectId": w.patient.id,
                     "node": {"mobilityStatus": "independent"}, "originalNode": {"mobilityStatus": "supervision"}}


async def test_reassignment_leaves_the_old_therapist_and_enters_the_new_one(api, lq_url):
    w = api.world
    url = graphql_url(lq_url)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=30)
    owner = await acked(url, api.tokens["owner"])
    other = await acked(url, api.tokens["other_therapist"])
    await owner.subscribe("patients", "subscription { patients { event id objectId node { objectId } originalNode { objectId } } }")
    await owner.subscribe("scores", f"subscription {{ mobilityScores(where: {{ {pinned(w)} }}) {{ event objectId node {{ objectId }} }} }}")
    await other.subscribe("patients", "subscription { patients(where: { mobilityStatus: { exists: true } }) "
                                      "{ event objectId node { primaryTherapist { username } } } }")
    await other.subscribe("scores", f"subscription {{ mobilityScores(where: {{ {pinned(w)} }}) {{ event objectId }} }}")
    for socket in (owner, other):
        await settled(socket)
    await api.store.assign_therapist(principal=w.lead, patient_id=w.patient.id, therapist_id=w.other_therapist.user_id)
    # Access ended: LEAVE with only the ids, nothing of the record, before or after.
    events = sorted([await owner.event(), await owner.event()], key=lambda e: e["sub"])
    assert events == [
        {"sub": "patients", "event": "LEAVE", "id": to_global_id("Patient", w.patient.id), "objectId": w.patient.id,
         "node": None, "originalNode": None},
        {"sub": "scores", "event": "LEAVE", "objectId": score.id, "node": None},
    ]
    event = await other.event("patients")
    assert (event["event"], event["objectId"]) == ("ENTER", w.patient.id)
    assert event["node"]["primaryTherapist"] == {"username": "other-therapist"}
    new = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=31)
    assert await other.event("scores") == {"sub": "scores", "event": "CREATE", "objectId": new.id}
    # The old therapist got none of it: its next event is the status change of its other patient.
    await api.store.change_status(principal=w.lead, patient_id=w.other_patient.id, status="dependent", reason=None)
    await api.store.assign_therapist(principal=w.lead, patient_id=w.other_patient.id, therapist_id=w.owner.user_id)
    event = await owner.event("patients")
    assert (event["event"], event["objectId"]) == ("ENTER", w.other_patient.id)


async def test_care_team_removal_leaves_that_patients_objects(api, lq_url):
    w = api.world
    contributor_id = w.team_contributor.user_id
    await api.store.add_care_team_member(principal=w.lead, patient_id=w.other_patient.id, user_id=contributor_id)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=30)
    kept = await api.store.record_score(principal=w.lead, patient_id=w.other_patient.id, score_type="berg", value=40)
    contributor = await acked(graphql_url(lq_url), api.tokens["team_contributor"])
    await contributor.subscribe("all", "subscription { mobilityScores { event objectId node { objectId } } }")
    await settled(contributor)
    await api.store.remove_care_team_member(principal=w.lead, patient_id=w.patient.id, user_id=contributor_id)
    assert await contributor.event("all") == {"sub": "all", "event": "LEAVE", "objectId": score.id, "node": None}
    await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=32)
    await api.store.mark_score_in_error(principal=w.lead, score_id=kept.id, reason="typo")
    # Q's score (still on its team) is next; P's new score never came.
    assert await contributor.event("all") == {"sub": "all", "event": "UPDATE", "objectId": kept.id,
                                              "node": {"objectId": kept.id}}


async def test_a_role_change_that_ends_access_leaves(api, lq_url):
    """The owning therapist made a contributor sees only its care teams' patients: P leaves."""
    w = api.world
    owner = await acked(graphql_url(lq_url), api.tokens["owner"])
    await owner.subscribe("patients", "subscription { patients { event objectId node { objectId } } }")
    await settled(owner)
    await api.store.update_user(principal=w.lead, user_id=w.owner.user_id, changes={"role": "contributor"})
    assert await owner.event("patients") == {"sub": "patients", "event": "LEAVE", "objectId": w.patient.id,
                                             "node": None}
    await api.store.change_status(principal=w.lead, patient_id=w.patient.id, status="dependent", reason=None)
    await api.store.add_care_team_member(principal=w.lead, patient_id=w.other_patient.id, user_id=w.owner.user_id)
    await api.store.change_status(principal=w.lead, patient_id=w.other_patient.id, status="dependent", reason=None)
    # P's change never came: the next event is Q's, which enters the view now that it is on Q's team.
    assert await owner.event("patients") == {"sub": "patients", "event": "ENTER", "objectId": w.other_patient.id,
                                             "node": {"objectId": w.other_patient.id}}


async def test_complete_ends_only_that_subscription(api, lq_url):
    w = api.world
    owner = await acked(graphql_url(lq_url), api.tokens["owner"])
    query = f"subscription {{ mobilityScores(where: {{ {pinned(w)} }}) {{ objectId }} }}"
    await owner.subscribe("a", query)
    await owner.subscribe("b", query)
    await owner.send({"type": "complete", "id": "a"})
    await owner.send({"type": "complete", "id": "unknown"})  # an id it does not know: ignored
    await settled(owner)
    first = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=1)
    second = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=2)
    assert [await owner.event(), await owner.event()] == [{"sub": "b", "objectId": first.id},
                                                         {"sub": "b", "objectId": second.id}]
    await owner.subscribe("a", query)  # a completed id may be used again
    await settled(owner)
    third = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=3)
    assert sorted([tuple((await owner.event()).values()) for _ in "ab"]) == [("a", third.id), ("b", third.id)]


async def test_logout_ends_every_subscription_with_209_then_closes_4403(api, lq_url, gql):
    w = api.world
    contributor = await acked(graphql_url(lq_url), api.tokens["team_contributor"])
    await contributor.subscribe("patients", "subscription { patients { event objectId node { objectId } } }")
    await contributor.subscribe("notes", f"subscription {{ sessionNotes(where: {{ {pinned(w)} }}) {{ event objectId }} }}")
    await settled(contributor)
    assert (await gql.post("mutation { logOut(input: {}) { ok } }", who="team_contributor")).json() == {
        "data": {"logOut": {"ok": True}}}
    seen = []
    while len([m for m in seen if m["type"] == "error"]) < 2:
        seen.append(await contributor.recv())
    ended = {"message": "Invalid session token", "extensions": {"code": 209}}
    # The tracked patient leaves (ids only), then each subscription ends with 209.
    assert sorted(seen, key=lambda m: (m["id"], m["type"])) == [
        {"id": "notes", "type": "error", "payload": [ended]},
        {"id": "patients", "type": "error", "payload": [ended]},
        {"id": "patients", "type": "next", "payload": {"data": {"patients": {
            "event": "LEAVE", "objectId": w.patient.id, "node": None}}}},
    ]
    assert seen.index(next(m for m in seen if m["id"] == "patients" and m["type"] == "next")) < seen.index(
        next(m for m in seen if m["id"] == "patients" and m["type"] == "error"))
    assert await contributor.closed() == (4403, "Forbidden")


async def test_deactivation_ends_the_socket_too(api, lq_url):
    w = api.world
    contributor = await acked(graphql_url(lq_url), api.tokens["team_contributor"])
    await contributor.subscribe("notes", f"subscription {{ sessionNotes(where: {{ {pinned(w)} }}) {{ objectId }} }}")
    await settled(contributor)
    await api.store.update_user(principal=w.lead, user_id=w.team_contributor.user_id, changes={"active": False})
    assert await contributor.recv() == {"id": "notes", "type": "error", "payload": [
        {"message": "Invalid session token", "extensions": {"code": 209}}]}
    assert await contributor.closed() == (4403, "Forbidden")


@pytest.mark.parametrize("init", [
    {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": "r:not-a-session"},
    {"X-Parse-Application-Id": APP_ID},
    {"X-Parse-Application-Id": "wrong", "X-Parse-Session-Token": "TOKEN"},
    {"X-Parse-Session-Token": "TOKEN"},
    {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": "TOKEN", "X-Parse-Master-Key": "guess"},
], ids=["bad token", "no token", "wrong app id", "no app id", "master key"])
async def test_connection_init_without_good_credentials_closes_4403(api, lq_url, init):
    socket = await opened(graphql_url(lq_url))
    payload = {k: api.tokens["owner"] if v == "TOKEN" else v for k, v in init.items()}
    await socket.send({"type": "connection_init", "payload": payload})
    assert await socket.closed() == (4403, "Forbidden")


async def test_header_names_in_connection_params_are_case_insensitive(api, lq_url):
    socket = await opened(graphql_url(lq_url))
    await socket.send({"type": "connection_init", "payload": {
        "x-parse-application-id": APP_ID, "x-parse-session-token": api.tokens["owner"]}})
    assert await socket.recv() == {"type": "connection_ack"}


async def test_no_connection_init_in_time_closes_4408(api, lq_url, monkeypatch):
    monkeypatch.setattr(subscriptions, "INIT_TIMEOUT_SECONDS", 0.3)
    socket = await opened(graphql_url(lq_url))
    await socket.send({"type": "ping"})  # chatter is not an init: the deadline counts from the opening
    assert await socket.recv() == {"type": "pong"}
    assert await socket.closed() == (4408, "Connection initialisation timeout")


async def test_subscribe_before_the_ack_closes_4401(api, lq_url):
    socket = await opened(graphql_url(lq_url))
    await socket.subscribe("1", "subscription { patients { objectId } }")
    assert await socket.closed() == (4401, "Unauthorized")


async def test_a_duplicate_id_closes_4409(api, lq_url):
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    await socket.subscribe("dup", "subscription { patients { objectId } }")
    await socket.subscribe("dup", "subscription { mobilityScores { objectId } }")
    assert await socket.closed() == (4409, "Subscriber for dup already exists")


async def test_a_second_connection_init_closes_4429(api, lq_url):
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    await socket.send({"type": "connection_init", "payload": {"X-Parse-Application-Id": APP_ID}})
    assert await socket.closed() == (4429, "Too many initialisation requests")


@pytest.mark.parametrize("message", [
    "not json", "[1]", '{"type": 5}', '{"payload": {}}', '{"type": "dance"}', '{"type": "next", "id": "1", "payload": {}}',
    '{"type": "subscribe", "payload": {"query": "{ health }"}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ health }", "variables": [1]}}',
    '{"type": "complete"}', '{"type": "ping", "payload": "x"}', "x" * 70_000,
])
async def test_an_invalid_message_closes_4400(api, lq_url, message):
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    await socket.send(message)
    code, reason = await socket.closed()
    assert code == 4400 and reason, reason


@pytest.mark.parametrize("subprotocols", [None, ["graphql-ws"]], ids=["none", "the old subscriptions-transport-ws"])
async def test_another_subprotocol_or_none_is_refused(api, lq_url, subprotocols):
    socket = Socket(await connect(graphql_url(lq_url), subprotocols=subprotocols))
    assert socket.ws.subprotocol is None
    assert await socket.closed() == (4406, "Subprotocol not acceptable")


async def test_ping_gets_pong_with_its_payload(api, lq_url):
    socket = await opened(graphql_url(lq_url))
    await socket.send({"type": "ping"})
    assert await socket.recv() == {"type": "pong"}
    await socket.send({"type": "connection_init", "payload": {"X-Parse-Application-Id": APP_ID,
                                                              "X-Parse-Session-Token": api.tokens["owner"]}})
    assert await socket.recv() == {"type": "connection_ack"}
    await socket.send({"type": "ping", "payload": {"at": 12}})
    assert await socket.recv() == {"type": "pong", "payload": {"at": 12}}
    await socket.send({"type": "pong"})  # an unsolicited pong is a heartbeat: no answer
    await settled(socket)


async def test_a_query_and_a_mutation_over_the_socket_run_as_over_http(api, lq_url, gql):
    w = api.world
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    query = 'query P($id: ID!) { patient(id: $id) { displayName primaryTherapist { username } } }'
    await socket.subscribe("q", query, {"id": w.patient.id})
    over_http = (await gql.post(query, {"id": w.patient.id}, who="owner")).json()
    assert await socket.recv() == {"id": "q", "type": "next", "payload": over_http}
    assert await socket.recv() == {"id": "q", "type": "complete"}
    await socket.subscribe("m", 'mutation { createMobilityScore(input: { fields: { patient: { link: "%s" }, '
                                'scoreType: "berg", scoreValue: 12, scoreDate: "2026-01-02T00:00:00.000Z" } }) '
                                '{ mobilityScore { objectId scoreValue recordedBy { username } } } }' % w.patient.id)
    message = await socket.recv()
    created = message["payload"]["data"]["createMobilityScore"]["mobilityScore"]
    assert message["type"] == "next" and created["scoreValue"] == 12 and created["recordedBy"] == {"username": "owner"}
    assert (await api.store.get(principal=w.lead, class_name="MobilityScore", object_id=created["objectId"])).id
    assert await socket.recv() == {"id": "m", "type": "complete"}
    await socket.subscribe("q", '{ patient(id: "nope") { objectId } }')  # the id is free again after complete
    message = await socket.recv()
    assert message["type"] == "next" and message["payload"]["errors"][0]["extensions"]["code"] == 101
    assert await socket.recv() == {"id": "q", "type": "complete"}


async def test_an_invalid_operation_gets_an_error_and_the_socket_serves_on(api, lq_url):
    w = api.world
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    cases = [
        ("subscription { mobilityScores { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        ("subscription { users { objectId } }", "GRAPHQL_VALIDATION_FAILED"),  # users are not followed
        ("subscription { mobilityScores { objectId } patients { objectId } }", "GRAPHQL_VALIDATION_FAILED"),
        ("subscription {", "GRAPHQL_PARSE_FAILED"),
        ("{ __schema { types { name } } }", "FORBIDDEN"),  # introspection: leads only
    ]
    for query, code in cases:
        await socket.subscribe("x", query)
        message = await socket.recv()
        assert message["type"] == "error" and message["id"] == "x", message
        assert message["payload"][0]["extensions"]["code"] == code, (query, message)
        assert "Did you mean" not in json.dumps(message)
    await socket.subscribe("x", "subscription S($v: Float) { mobilityScores(where: { scoreValue: { equalTo: $v } }) "
                                "{ objectId } }", {"v": 5})
    await socket.send({"id": "y", "type": "subscribe", "payload": {
        "query": "subscription S($v: Float) { mobilityScores(where: { scoreValue: { equalTo: $v } }) { objectId } }",
        "variables": {"v": "many"}}})
    message = await socket.recv()
    assert (message["type"], message["id"], message["payload"][0]["extensions"]["code"]) == ("error", "y", "BAD_USER_INPUT")
    await settled(socket)
    await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=4)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=5)
    assert await socket.event("x") == {"sub": "x", "objectId": score.id}  # the 4 did not match $v


async def test_have_by_anything_but_the_id_is_error_102(api, lq_url):
    w = api.world
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    for where in ['patient: { have: { displayName: { equalTo: "Pat Example" } } }',
                  f'patient: {{ have: {{ objectId: {{ notEqualTo: "{w.patient.id}" }} }} }}',
                  'recordedBy: { haveNot: { username: { equalTo: "lead" } } }']:
        await socket.subscribe("h", f"subscription {{ mobilityScores(where: {{ {where} }}) {{ objectId }} }}")
        message = await socket.recv()
        assert message["type"] == "error" and message["id"] == "h", message
        assert message["payload"][0]["extensions"]["code"] == 102, message
    # By id, with `in`: a plain pointer comparison, and it works.
    await socket.subscribe("h", f'subscription {{ mobilityScores(where: {{ patient: {{ have: {{ objectId: '
                                f'{{ in: ["{w.patient.id}", "{w.other_patient.id}"] }} }} }} }}) {{ objectId }} }}')
    await settled(socket)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=5)
    assert await socket.event("h") == {"sub": "h", "objectId": score.id}


async def test_the_recipients_of_one_event_share_its_pointer_reads(api, lq_url, monkeypatch):
    """Two subscriptions of one principal selecting the same pointer: one store read for both."""
    w = api.world
    reads: list[tuple[str, list[str]]] = []
    get_many = api.store.get_many

    async def counted(**kwargs: Any) -> Any:
        reads.append((kwargs["class_name"], sorted(kwargs["object_ids"])))
        return await get_many(**kwargs)

    monkeypatch.setattr(api.store, "get_many", counted)
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    query = "subscription { mobilityScores { objectId node { patient { displayName primaryTherapist { username } } } } }"
    await socket.subscribe("a", query)
    await socket.subscribe("b", query)
    await settled(socket)
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=5)
    events = sorted([await socket.event(), await socket.event()], key=lambda e: e["sub"])
    patient = {"displayName": "Pat Example", "primaryTherapist": {"username": "owner"}}
    assert events == [{"sub": i, "objectId": score.id, "node": {"patient": patient}} for i in ("a", "b")]
    assert reads == [("Patient", [w.patient.id]), ("_User", [w.owner.user_id])]


async def test_a_socket_that_falls_behind_catches_up_with_every_object_once(api, lq_url, monkeypatch):
    """As the live-query socket: past its send queue its unsent events are dropped and its view is
    re-read; once its client reads again it has every new score once, CREATE or ENTER."""
    from starlette.websockets import WebSocket

    from dashboard.api import live_query

    monkeypatch.setattr(live_query, "SEND_QUEUE", 4)
    w = api.world
    url = graphql_url(lq_url)
    behind = await acked(url, api.tokens["owner"])
    await behind.subscribe("s", "subscription { mobilityScores { event objectId } }")
    await settled(behind)
    port = behind.ws.local_address[1]
    reading = asyncio.Event()
    send_text = WebSocket.send_text

    async def stalled(self: WebSocket, data: str) -> None:
        if self.client is not None and self.client.port == port:
            await reading.wait()
        await send_text(self, data)

    monkeypatch.setattr(WebSocket, "send_text", stalled)
    watcher = await acked(url, api.tokens["lead"])
    await watcher.subscribe("s", "subscription { mobilityScores { objectId } }")
    await settled(watcher)
    created = []
    for i in range(12):
        score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=i)
        created.append(score.id)
        assert (await watcher.event("s"))["objectId"] == score.id  # the others are not held back
    reading.set()
    received: dict[str, list[str]] = {}
    while sum(len(events) for events in received.values()) < len(created):
        event = await behind.event("s")
        received.setdefault(event["objectId"], []).append(event["event"])
    events = [received.get(oid) for oid in created]
    assert all(e is not None and len(e) == 1 and e[0] in ("CREATE", "ENTER") for e in events), events
    assert any(e == ["ENTER"] for e in events)  # some came through the re-read
    await settled(behind)  # and nothing more


async def test_no_task_is_started_per_subscription(api, lq_url):
    """Subscriptions are sinks on the hub: twenty of them leave no task of the live sockets running."""
    from dashboard.api import live_query

    ours = {live_query.__file__, subscriptions.__file__}
    socket = await acked(graphql_url(lq_url), api.tokens["owner"])
    for i in range(20):
        await socket.subscribe(str(i), "subscription { mobilityScores { objectId } }")
    await settled(socket)
    running = [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "cr_code", None) is not None
               and t.get_coro().cr_code.co_filename in ours]
    assert running == []
    score = await api.store.record_score(principal=api.world.lead, patient_id=api.world.patient.id,
                                         score_type="berg", value=5)
    events = [await socket.event() for _ in range(20)]  # and each of them delivers
    assert sorted(int(e["sub"]) for e in events) == list(range(20)) and {e["objectId"] for e in events} == {score.id}
