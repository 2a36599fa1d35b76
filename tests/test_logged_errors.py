"""The suite fails a test that logs an ERROR from our code (tests/conftest.py `fail_on_logged_errors`),
in this process or in a server process's log, unless the test names the logger with `allow_errors`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.server import Server
from tests import support

ROOT = Path(__file__).resolve().parent.parent

CASES = '''
import logging

import pytest


def test_error_from_our_logger():
    logging.getLogger("ot_tracker.hub").error("a subscriber's sink failed")


def test_exception_from_our_logger():
    try:
        raise ValueError("the hub is closed")
    except ValueError:
        logging.getLogger("ot_tracker.pages").exception("live refresh failed")


def test_critical_in_a_fixture_teardown(logs_critical_at_teardown):
    pass


@pytest.fixture
def logs_critical_at_teardown():
    yield
    logging.getLogger("ot_tracker.store").critical("audit flush failed")


def test_warning_from_our_logger():
    logging.getLogger("ot_tracker.hub").warning("only a warning")


def test_error_from_a_library():
    logging.getLogger("nicegui").error("not ours")


@pytest.mark.allow_errors("ot_tracker.hub")
def test_allowed_logger_and_its_children():
    logging.getLogger("ot_tracker.hub").error("provoked on purpose")
    logging.getLogger("ot_tracker.hub.sink").error("provoked on purpose too")


@pytest.mark.allow_errors("ot_tracker.hub")
def test_allowing_one_logger_is_not_allowing_another():
    logging.getLogger("ot_tracker.hubbub").error("a different logger")
'''


def test_a_test_that_logs_an_error_from_our_code_fails_with_its_logger_and_message(tmp_path: Path) -> None:
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rpE", "-q",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_cases.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    failed = set(re.findall(r"^ERROR test_cases.py::(\w+)", out, re.M))  # in teardown
    passed = set(re.findall(r"^PASSED test_cases.py::(\w+)", out, re.M))  # the call itself
    assert failed == {"test_error_from_our_logger", "test_exception_from_our_logger",
                      "test_critical_in_a_fixture_teardown", "test_allowing_one_logger_is_not_allowing_another"}, out
    assert passed == {"test_error_from_our_logger", "test_exception_from_our_logger",
                      "test_critical_in_a_fixture_teardown", "test_allowing_one_logger_is_not_allowing_another",
                      "test_warning_from_our_logger", "test_error_from_a_library",
                      "test_allowed_logger_and_its_children"}, out
    for said in ("ot_tracker.hub: a subscriber's sink failed",
                 "ot_tracker.pages: live refresh failed  [ValueError: the hub is closed]",
                 "ot_tracker.store: audit flush failed", "ot_tracker.hubbub: a different logger"):
        assert said in out, out
    assert "provoked on purpose" not in out and "not ours" not in out, out
    assert done.returncode == 1, out


SERVER_LOG = textwrap.dedent("""\
    OT Tracker on http://127.0.0.1:8080
    2026-05-01 10:00:00,001 WARNING ot_tracker.pages: a page was slow
    2026-05-01 10:00:00,002 ERROR ot_tracker.hub: a subscriber's sink failed
    Traceback (most recent call last):
      File "dashboard/hub.py", line 151, in dispatch
    RuntimeError: the socket is gone
    2026-05-01 10:00:00,003 ERROR nicegui: a library's own
    2026-05-01 10:00:00,004 ERROR ot_tracker.live_query: send failed
    """)


def test_a_server_that_logged_an_error_from_our_code_fails_when_it_stops(tmp_path: Path, monkeypatch) -> None:
    """The server-log half, on a log written by hand (a real server logs in this format: bench/server.py)."""
    server = support.LiveServer(Server(tmp_path))
    (tmp_path / "server.log").write_text(SERVER_LOG)
    assert server.new_errors(("ot_tracker.live_query",)) == [
        "2026-05-01 10:00:00,002 ERROR ot_tracker.hub: a subscriber's sink failed  [RuntimeError: the socket is gone]"]
    assert server.new_errors() == []  # each line is judged once

    with open(tmp_path / "server.log", "a") as log:
        log.write("2026-05-01 10:00:01,000 CRITICAL ot_tracker.store: stopping with writes pending\n")
    with pytest.raises(AssertionError, match="ot_tracker.store: stopping with writes pending"):
        server.stop()

    with open(tmp_path / "server.log", "a") as log:
        log.write("2026-05-01 10:00:02,000 ERROR ot_tracker.hub: provoked\n")
    monkeypatch.setattr(support, "allowed_error_loggers", ("ot_tracker.hub",))
    server.stop()  # the running test allows that logger


def test_a_server_process_logs_each_records_level_and_logger(tmp_path: Path) -> None:
    """What the check above reads: the launcher starts the server after LOG_SETUP (bench/server.py), and
    a record logged after it, in a process of its own, is found with its logger and exception."""
    from bench.server import LOG_SETUP, error_records

    code = (f"{LOG_SETUP}; from dashboard import log_privacy; log_privacy.install(); "
            "log = logging.getLogger('ot_tracker.hub'); log.warning('only a warning')\n"
            "try:\n    raise RuntimeError('the socket is gone')\n"
            "except RuntimeError:\n    log.exception(\"hub: a subscriber's sink failed\")")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [(logger, line)] = error_records(done.stderr)
    assert logger == "ot_tracker.hub", done.stderr
    assert line.endswith("ERROR ot_tracker.hub: hub: a subscriber's sink failed  [RuntimeError: the socket is gone]"), line
