"""Smoke test of the benchmark harness: `python -m bench --quick` runs every scenario at tiny scale
against real server processes. It checks that each completes, every delivery arrives and no server
logs an ERROR from our code (ot_tracker loggers), not timings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import assert_no_logged_errors

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_completes_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["BENCH_LOG_DIR"] = str(tmp_path / "server-logs")  # each scenario's server log, kept for the check below
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    scenarios = results["scenarios"]
    assert set(scenarios) == {"floor", "fanout", "pages", "isolation", "writes", "caseload", "memory", "graphql"}
    for name, result in scenarios.items():
        assert result.get("completed"), (name, result.get("blocked") or result.get("error"), result.get("traceback"))
        assert result.get("all_delivered", True), (name, result)
    for key, fan in scenarios["fanout"].items():
        if key.startswith("s") and key[1:].isdigit():
            assert fan["lost"] == 0 and fan["delivered"] == fan["expected_deliveries"], fan
    assert scenarios["isolation"]["lost"] == 0 and scenarios["isolation"]["events_to_others"] == 0
    assert all(v["pushes_lost"] == 0 for k, v in scenarios["writes"].items() if k.startswith("c") and k[1:].isdigit())
    graphql = scenarios["graphql"]
    assert {shape["rows"] for shape in graphql["shapes"].values()} == {100}, graphql["shapes"]
    assert graphql["refused_concurrent"] == 0 and graphql["fanout"]["live"]["lost"] == 0
    # The GraphQL websocket, when the server has one, delivers everything; without one it is "not available".
    assert graphql["fanout"]["graphql"].get("lost", 0) == 0, graphql["fanout"]["graphql"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_logged_errors(tmp_path / "server-logs")


def test_bench_quick_cluster(tmp_path: Path) -> None:
    """`python -m bench --quick --only cluster`: three instances on one fresh PostgreSQL database; every
    delivery arrives once, every revocation is refused on the other instance, no server logs an ERROR.
    Skipped, saying so, when PostgreSQL does not answer."""
    import asyncio

    import pytest

    from bench.scenarios.cluster import DEFAULT_POSTGRES, postgres_answers

    base = os.environ.get("OT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES
    why = asyncio.run(postgres_answers(base))
    if why:
        pytest.skip(f"cluster bench needs PostgreSQL: {why}")
    out = tmp_path / "cluster.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["BENCH_LOG_DIR"] = str(tmp_path / "server-logs")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "cluster", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    cluster = json.loads(out.read_text())["scenarios"]["cluster"]
    assert cluster.get("completed"), (cluster.get("blocked") or cluster.get("error"), cluster.get("traceback"))
    for key, fan in cluster["fanout"].items():
        for side in ("cross", "one_instance"):
            assert fan[side]["lost"] == 0 and fan[side]["duplicates"] == 0, (key, side, fan[side])
            assert fan[side]["delivered"] == fan[side]["expected_deliveries"], (key, side, fan[side])
    assert cluster["pages"]["lost"] == 0, cluster["pages"]
    for kind, lag in cluster["revocation"].items():
        assert lag["not_refused"] == 0 and lag["live_missing"] == 0, (kind, lag)
    creates = cluster["creates"]
    assert creates["refused"] == 0 and not creates["request_errors"] and creates["events_to_subscribers"] == 0
    assert cluster["all_delivered"], cluster
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_logged_errors(tmp_path / "server-logs")
