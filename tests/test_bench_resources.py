"""Smoke test of the resource-limit scenario (REVIEW-SECURITY H3/H4), which `python -m bench --quick` does not
run (it is opt-in): `python -m bench --quick --only resources` completes at tiny scale against real server
processes, nothing is aborted, the server still answers /status after each attack, and no server logs an
ERROR from our code (ot_tracker loggers). What the server answers to the attacks (200, 4xx, 429, closes) is
recorded, not asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import assert_no_logged_errors

ROOT = Path(__file__).resolve().parent.parent


def test_bench_resources_quick_completes(tmp_path: Path) -> None:
    out = tmp_path / "resources.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["BENCH_LOG_DIR"] = str(tmp_path / "server-logs")  # each scenario's server log, kept for the check below
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "resources", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())["scenarios"]["resources"]
    assert result.get("completed"), (result.get("error"), result.get("traceback"))
    assert result["aborted"] == [], result["aborted"]
    batch = result["batch"]
    assert batch["seeding"]["created"] + batch["seeding"]["topped_up_through_store"] == result["plan"]["scores"]
    for level in batch["levels"]:
        assert sum(level["http_statuses"].values()) == level["concurrent_batches"], level
        assert level["server_alive_after"] and level["status_after"]["ok"], level
    sockets = result["sockets"]
    assert sockets["server_alive"] and sockets["status_after_hold"]["ok"], sockets
    assert sockets["idle"]["opened"] + sum(sockets["idle"]["open_errors"].values()) == result["plan"]["sockets"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_logged_errors(tmp_path / "server-logs")
