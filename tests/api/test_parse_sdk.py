"""The official Parse JS SDK (npm `parse` 8.x, tests/parse_sdk) against a live server."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent.parent / "parse_sdk"


def test_official_parse_js_sdk_against_live_server(live_server):
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the Parse SDK check (see tests/install.sh)")
    if not (SDK_DIR / "node_modules" / "parse").is_dir():
        pytest.fail("the Parse SDK is not installed: run `npm ci --prefix tests/parse_sdk` (tests/install.sh does)")
    app_id = live_server.env.get("OT_PARSE_APP_ID", "ot-tracker")
    result = subprocess.run([node, str(SDK_DIR / "check.mjs"), live_server.url, app_id],
                            capture_output=True, text=True, timeout=180)
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert " 0 failed" in result.stdout
