"""Stock GraphQL clients from npm (tests/graphql_client: graphql-request, graphql-ws over `ws`) against a
live server: sign-up, log-in, mutations, where/order/cursor paging, status history, subscriptions with
access loss, log-out (GRAPHQL.md §6, §8, §9). check.mjs prints one JSON line per step."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parent.parent / "graphql_client"


def test_stock_graphql_clients_against_live_server(live_server):
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the GraphQL client check (see tests/install.sh)")
    for package in ("graphql-request", "graphql-ws", "ws", "graphql"):
        if not (CLIENT_DIR / "node_modules" / package).is_dir():
            pytest.fail(f"{package} is not installed: run `npm ci --prefix tests/graphql_client` (tests/install.sh does)")
    env = {**os.environ, "OT_SERVER_URL": live_server.url,
           "OT_PARSE_APP_ID": live_server.env.get("OT_PARSE_APP_ID", "ot-tracker")}
    # Every step has its own 10 s limit inside the script; this only bounds the whole run.
    result = subprocess.run([node, str(CLIENT_DIR / "check.mjs")], capture_output=True, text=True,
                            timeout=300, env=env)
    print(result.stdout)

    steps = []
    for line in result.stdout.splitlines():
        try:
            steps.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON step line: {line!r}\nstderr:\n{result.stderr}")
    assert steps, f"no steps printed (exit {result.returncode})\nstderr:\n{result.stderr}"
    failed = [s for s in steps if s.get("ok") is not True]
    assert not failed, f"{len(failed)} of {len(steps)} steps failed:\n" + "\n".join(
        f"- {s.get('step')}: {json.dumps(s.get('detail'))}" for s in failed) + (
        f"\nstderr:\n{result.stderr}" if result.stderr else "")
    assert result.returncode == 0, f"exit {result.returncode} with every printed step passed\nstderr:\n{result.stderr}"
