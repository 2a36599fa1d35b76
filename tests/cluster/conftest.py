"""One cluster for the cluster tests: a private PostgreSQL, three instances (a, b, c) on it and
HAProxy in front (tests/cluster/harness.py). Select them with `-m cluster`; they skip, saying why,
without haproxy or PostgreSQL's server binaries. Tests that kill an instance revive it."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.cluster.harness import Cluster, PrivatePostgres, why_unavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: several real instances on one PostgreSQL behind HAProxy "
                                       "(tests/cluster, SCALE-OUT.md §6)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def private_postgres(tmp_path_factory: pytest.TempPathFactory):
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    pg = PrivatePostgres()
    try:
        pg.start()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here", said in the skip
        pg.stop()
        pytest.skip(f"a private PostgreSQL could not start: {str(exc)[:500]}")
    yield pg
    try:  # kept beside the servers' logs (deadlocks and terminated backends are explained there)
        shutil.copy(pg.log, tmp_path_factory.getbasetemp() / "postgres.log")
    except OSError:
        pass
    pg.stop()


@pytest.fixture(scope="session")
def cluster(private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory):
    url = asyncio.run(private_postgres.create_database("ot_cluster"))
    nodes = Cluster(tmp_path_factory.mktemp("cluster"), private_postgres, url, size=3)
    try:
        nodes.start()
    except BaseException:
        nodes.stop()
        raise
    yield nodes
    nodes.stop()


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    """The cluster with every instance running and UP in HAProxy (a test before may have killed one)."""
    for name in cluster.servers:
        cluster.revive(name)
    cluster.wait_balanced()
    return cluster
