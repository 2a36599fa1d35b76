"""Scenario 4 of SCALE-OUT.md §6: one sign-in limit across instances and channels. The 11th attempt in
a minute for one account is refused (429) on every instance, through REST /parse/login and through
the pages' sign-in form; client addresses, as HAProxy passes them on in X-Forwarded-For, count apart.

Each client connects from a loopback address of its own (127.0.0.2, ...): HAProxy puts that address
in X-Forwarded-For and the instances believe it from HAProxy (OT_TRUSTED_PROXIES=127.0.0.1).
Needs the limiter shared in PostgreSQL: with one limiter per process, the attempts spread over three
instances never reach the limit on any one of them."""
from __future__ import annotations

from tests.cluster.harness import CLUSTER_SETTINGS, Cluster, page_sign_in, rest, session_from

PER_ACCOUNT = int(CLUSTER_SETTINGS["OT_LOGIN_RATE_PER_MINUTE"])
PER_ADDRESS = int(CLUSTER_SETTINGS["OT_LOGIN_ADDRESS_RATE_PER_MINUTE"])
WRONG = "not-the-password-at-all"


async def rest_login(session, base: str, username: str, node: str | None = None) -> int:  # noqa: ANN001
    status, _ = await rest(session, "POST", f"{base}/parse/login", body={"username": username, "password": WRONG},
                           headers={"Cookie": f"ot_node={node}"} if node else None)
    return status


async def test_the_eleventh_attempt_for_one_account_is_refused_on_every_instance_and_channel(healthy: Cluster):
    cluster = healthy
    account = "ward"  # no other cluster test signs in as the ward screen
    async with session_from("127.0.0.2") as session:
        channels = [lambda n=n: rest_login(session, cluster.url(n), account) for n in ("a", "b", "c")]
        channels += [lambda n=n: page_sign_in(session, cluster.lb, account, node=n, password=WRONG) for n in ("a", "b", "c")]
        channels += [lambda: rest_login(session, cluster.lb, account)]
        answers = []
        for i in range(PER_ACCOUNT):
            result = await channels[i % len(channels)]()
            answers.append(result if isinstance(result, int) else result[0])
        assert 429 not in answers and set(answers) <= {400, 401, 404}, answers  # wrong password, not yet limited
        refused = {}
        for label, attempt in zip(["REST on a", "REST on b", "REST on c", "form on a", "form on b", "form on c",
                                   "REST via HAProxy"], channels):
            result = await attempt()
            refused[label] = result if isinstance(result, int) else result[0]
    assert set(refused.values()) == {429}, f"after {PER_ACCOUNT} attempts for one account: {refused}"


async def test_client_addresses_count_apart_through_haproxy(healthy: Cluster):
    cluster = healthy
    async with session_from("127.0.0.3") as crowded, session_from("127.0.0.4") as other:
        # One address tries as many accounts as its limit allows, through the balancer (any instance).
        answers = [await rest_login(crowded, cluster.lb, f"nobody-{i}") for i in range(PER_ADDRESS)]
        assert 429 not in answers, answers
        assert await rest_login(crowded, cluster.lb, "nobody-else") == 429  # that address is over its limit
        assert await rest_login(other, cluster.lb, "nobody-else") != 429  # another address is not
        status, _ = await page_sign_in(other, cluster.lb, "nobody-else-2", password=WRONG)
        assert status != 429
