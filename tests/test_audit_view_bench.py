"""Smoke test of the audit view's benchmark (bench/scenarios/audit.py): `python -m bench --quick --only
audit` fills a fresh SQLite database with 20,000 audit rows in bulk and reads each kind of page through
the store. It checks that the run completes and measures every kind of read, not timings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = ("first_page", "user_and_class", "patient", "denied", "user_last_7_days", "activity_panel",
         "access_report_30_days", "page_20_of_a_user", "csv_10000_rows")


def test_bench_quick_audit(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "audit", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    audit = json.loads(out.read_text())["scenarios"]["audit"]
    assert audit.get("completed"), (audit.get("error"), audit.get("traceback"))
    assert audit["rows"] == 20_000 and audit["database"] == "sqlite"
    for name in READS:
        assert audit[name]["n"] >= 3 and audit[name]["p50_ms"] > 0, (name, audit[name])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ERROR" not in done.stderr, done.stderr[-3000:]
