"""No patient data in logs (ACCESS.md "Privacy"; REVIEW-SECURITY M3).

The last test of the session greps every log line of the run (this process's records, captured in
tests/conftest.py, and the server subprocesses' logs) for the demo and fixture patients'
identifiers, names, dates of birth and note texts. The tests before it show the privacy filter
(dashboard/log_privacy.py) at work on the texts that carry them, and that the grep finds each kind.
"""
from __future__ import annotations

import io
import json
import logging
import re
import uuid
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from dashboard import log_privacy

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# -- what counts as patient data -------------------------------------------------------------------
def _patients() -> list[dict[str, str]]:
    """The demo patients (data/demo.json) and the fixture world's (tests/support.py build_world)."""
    patients = [{k: p[k] for k in ("patientId", "displayName", "dateOfBirth") if k in p}
                for p in json.loads((ROOT / "data" / "demo.json").read_text())["patients"]]
    support = (ROOT / "tests" / "support.py").read_text()
    for fields in re.findall(r"create\([^)]*?class_name=\"Patient\", fields=\{(.*?)\}\)", support, re.S):
        patients.append(dict(re.findall(r'"(patientId|displayName|dateOfBirth)": "([^"]+)"', fields)))
    return patients


def _note_texts() -> list[str]:
    """The demo's session notes, and the note texts the tests write (long enough to be specific)."""
    from dashboard.demo import SESSION_TEXT

    texts = set(SESSION_TEXT)
    for path in (ROOT / "tests").rglob("*.py"):
        if "node_modules" in path.parts or path.name == Path(__file__).name:
            continue
        texts.update(re.findall(r'(?:\btext=|"noteText":\s*)"([^"\\]{12,})"', path.read_text()))
    return sorted(texts)


def _date_forms(day: date) -> list[str]:
    """A date of birth as it could be written: ISO (with any time after it), Python's repr, common
    day-first and month-first forms."""
    forms = [day.isoformat(), f"{day.year}, {day.month}, {day.day})", f"{day.year}, {day.month}, {day.day},"]
    for fmt in ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y"):
        forms.append(day.strftime(fmt))
    return forms


def _phi_patterns() -> list[tuple[re.Pattern[str], str]]:
    out: list[tuple[str, str]] = []
    for patient in _patients():
        if "patientId" in patient:
            out.append((rf"(?<![A-Za-z0-9]){re.escape(patient['patientId'])}(?![A-Za-z0-9])",
                        f"patientId {patient['patientId']}"))
        if "displayName" in patient:
            name = patient["displayName"]
            for form in {name, quote(name), quote_plus(name)}:
                out.append((re.escape(form), f"displayName {name}"))
        if "dateOfBirth" in patient:
            day = datetime.fromisoformat(patient["dateOfBirth"]).date()
            for form in _date_forms(day):
                prefix = r"date(?:time)?\(" if form.startswith(str(day.year) + ",") else ""
                out.append((prefix + re.escape(form), f"dateOfBirth {day.isoformat()}"))
    for text in _note_texts():
        for form in {text, quote(text), quote_plus(text)}:
            out.append((re.escape(form), f"note text {text[:30]!r}"))
    return [(re.compile(pattern, re.IGNORECASE), label) for pattern, label in out]


PHI = _phi_patterns()


def find_phi(text: str) -> list[str]:
    """Every line of `text` that holds patient data, with what it holds."""
    found = []
    for line in text.splitlines():
        labels = sorted({label for pattern, label in PHI if pattern.search(line)})
        if labels:
            found.append(f"{line.strip()[:400]}   <-- {'; '.join(labels)}")
    return found


# -- the filter on the texts that carry patient data --------------------------------------------------
@contextmanager
def captured(filtered: bool = True):
    """A logger of its own (no propagation: raw text never reaches the session's capture) whose one
    handler formats as production does, with or without the privacy filter."""
    logger = logging.getLogger(f"ot_tracker.test_log_privacy.{uuid.uuid4().hex}" if filtered
                               else f"tests.unfiltered.{uuid.uuid4().hex}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    if filtered:
        handler.addFilter(log_privacy.PRIVACY_FILTER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logging.root.manager.loggerDict.pop(logger.name, None)


FAILING_ROW = "Failing row contains (vzPSwb0HAG, DEMO-0002, Blake Harrow, 1950-07-30 00:00:00+00, null, t)."
NOTE = "Worked on standing balance at the sink for grooming."
QUERY_URL = 'http://127.0.0.1:8080/parse/classes/Patient?where={"patientId":"DEMO-0002"}'
ENCODED_URL = "http://127.0.0.1:8080/parse/classes/Patient?where=%7B%22displayName%22%3A%22Blake%20Harrow%22%7D"


def _asyncpg_style_errors() -> list[BaseException]:
    """Raised and chained the way SQLAlchemy raises asyncpg's errors: driver error, then SQLAlchemy's."""
    import asyncpg
    from sqlalchemy import exc as sa_exc

    errors: list[BaseException] = []
    not_null = asyncpg.exceptions.NotNullViolationError(
        'null value in column "archived" of relation "patients" violates not-null constraint')
    not_null.detail, not_null.table_name, not_null.column_name = FAILING_ROW, "patients", "archived"
    bad_argument = asyncpg.exceptions.DataError(
        f"invalid input for query argument $5: 'Fell at home, DEMO-0002. {NOTE}' (expected int, got str)")
    for driver, statement, params, cls in (
            (not_null, "UPDATE patients SET archived=$1 WHERE patients.id = $2", (None, "DEMO-0002"),
             sa_exc.IntegrityError),
            (bad_argument, "INSERT INTO session_notes VALUES ($1, $2, $3, $4, $5)",
             ("n1", "p1", "review", datetime(1950, 7, 30), f"Fell at home, DEMO-0002. {NOTE}"), sa_exc.DBAPIError)):
        try:
            try:
                raise driver
            except Exception as inner:
                raise cls(statement, params, inner) from inner
        except Exception as outer:  # noqa: BLE001
            errors.append(outer)
    return errors


def _log_every_way(logger: logging.Logger, error: BaseException) -> None:
    """As the app and its libraries do: with exc_info, as an argument, in an f-string, as the message."""
    try:
        raise error
    except Exception as exc:  # noqa: BLE001
        logger.exception("Parse API: unexpected error")
        logger.error("write failed: %s", exc)
        logger.error(f"write failed: {exc}")
        logger.exception(exc)  # NiceGUI's app.handle_exception: log.exception(exception)
        logger.warning("background WAL checkpoint failed", exc_info=True)
    logger.warning(f"{QUERY_URL} not found")  # NiceGUI's 404 handler
    logger.warning(f"{ENCODED_URL} not found")
    logger.warning("%s not found", QUERY_URL)


def test_m3_the_filter_withholds_driver_messages_failing_rows_parameters_and_query_strings() -> None:
    errors = _asyncpg_style_errors()
    with captured(filtered=False) as (raw_logger, raw):
        for error in errors:
            _log_every_way(raw_logger, error)
    with captured() as (logger, out):
        for error in errors:
            _log_every_way(logger, error)
    raw_text, text = raw.getvalue(), out.getvalue()

    # Unfiltered, the same records hold all of it: the grep below would fail on them.
    assert "Failing row contains (vzPSwb0HAG" in raw_text and "[parameters: " in raw_text
    assert "invalid input for query argument $5: 'Fell at home" in raw_text and "?where=" in raw_text
    assert {"patientId DEMO-0002", "displayName Blake Harrow", "dateOfBirth 1950-07-30"} <= {
        label.strip() for line in find_phi(raw_text) for label in line.split("<--")[1].split(";")}
    assert any("note text" in line for line in find_phi(raw_text))

    assert find_phi(text) == [], "\n".join(find_phi(text))
    for gone in ("Failing row", "Fell at home", "vzPSwb0HAG", "[parameters: (", "?where", "%7B"):
        assert gone not in text, gone
    # What stays: the frames, the exception types with their SQLSTATE, the table and column, the path.
    assert "Traceback (most recent call last):" in text and "_asyncpg_style_errors" in text
    assert "sqlalchemy.exc.IntegrityError: [message withheld" in text
    assert "asyncpg.exceptions.NotNullViolationError, SQLSTATE 23502, table patients, column archived" in text
    assert "sqlalchemy.exc.DBAPIError: [message withheld" in text and "SQLSTATE 22000" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "/parse/classes/Patient?[query withheld] not found" in text


def test_m3_uvicorns_access_line_keeps_its_shape_without_the_query() -> None:
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5555", "OPTIONS", '/parse/classes/Patient?where={"patientId":"DEMO-0002"}',
                                "1.1", 404), None)
    assert log_privacy.PRIVACY_FILTER.filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(record)
    assert line == '127.0.0.1:5555 - "OPTIONS /parse/classes/Patient?[query withheld] HTTP/1.1" 404 Not Found'
    assert record.ot_privacy_withheld == ("query string",)


def test_m3_ordinary_records_pass_unchanged() -> None:
    with captured() as (logger, out):
        logger.warning("live refresh failed on %s", "/patient/vzPSwb0HAG")
        try:
            raise ValueError("the hub is closed")
        except ValueError:
            logger.exception("hub: a subscriber's sink failed")
    text = out.getvalue()
    assert "live refresh failed on /patient/vzPSwb0HAG" in text
    assert "ValueError: the hub is closed" in text and "Traceback (most recent call last):" in text


async def test_m3_real_driver_errors_reach_the_log_without_their_values(database_url: str) -> None:
    """A real failing row and real parameters (SQLite, and PostgreSQL when one answers), on an engine
    that does not hide them: the filter alone keeps them out."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url, hide_parameters=False)
    table = f"phi_probe_{uuid.uuid4().hex[:8]}"
    failures: list[BaseException] = []
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE TEMPORARY TABLE {table} (id varchar(20) PRIMARY KEY, "
                                    "name text, dob timestamp, archived boolean NOT NULL, n integer)"))
            for statement, params in (
                    (f"INSERT INTO {table} VALUES (:a, :b, :c, NULL, 1)",
                     {"a": "DEMO-0002", "b": "Blake Harrow", "c": datetime(1950, 7, 30)}),
                    (f"INSERT INTO {table} VALUES ('x', 'y', NULL, true, :n)", {"n": f"Fell at home, DEMO-0002. {NOTE}"})):
                try:
                    await conn.execute(text(statement), params)
                except Exception as exc:  # noqa: BLE001
                    failures.append(exc)
                    await conn.rollback()
                    await conn.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} (id varchar(20), "
                                            "name text, dob timestamp, archived boolean NOT NULL, n integer)"))
    finally:
        await engine.dispose()
    assert failures, "the probe statements should have failed"
    with captured(filtered=False) as (raw_logger, raw):
        for failure in failures:
            _log_every_way(raw_logger, failure)
    assert find_phi(raw.getvalue())  # unfiltered, the driver's text holds the values
    with captured() as (logger, out):
        for failure in failures:
            _log_every_way(logger, failure)
    assert find_phi(out.getvalue()) == [], "\n".join(find_phi(out.getvalue()))
    assert "sqlalchemy.exc." in out.getvalue() and "[message withheld" in out.getvalue()


def test_m3_sqlalchemy_echo_of_parameters_and_rows_is_withheld() -> None:
    from sqlalchemy import create_engine, text

    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(log_privacy.PRIVACY_FILTER)
    saved = engine_logger.level, engine_logger.propagate
    engine_logger.addHandler(handler)
    engine_logger.setLevel(logging.DEBUG)
    engine_logger.propagate = False
    try:
        engine = create_engine("sqlite://")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT :a, :b"), {"a": "DEMO-0002", "b": "Blake Harrow"}).all()
        engine.dispose()
    finally:
        engine_logger.removeHandler(handler)
        engine_logger.setLevel(saved[0])
        engine_logger.propagate = saved[1]
    text_out = stream.getvalue()
    assert "SELECT ?, ?" in text_out and "[withheld]" in text_out
    assert find_phi(text_out) == [], "\n".join(find_phi(text_out))


async def test_m3_runtime_start_installs_the_filter_once(tmp_path: Path) -> None:
    from dashboard import runtime
    from dashboard.db import Database
    from tests.support import settings_for

    url = f"sqlite+aiosqlite:///{tmp_path / 'runtime.sqlite3'}"
    database = Database(url)
    await database.create_all()
    await database.dispose()
    extra = logging.StreamHandler(io.StringIO())
    logging.getLogger("uvicorn.error").addHandler(extra)  # as uvicorn's dictConfig leaves it
    try:
        await runtime.start(settings_for(url))
        log_privacy.install()
        for target in (extra, *logging.getLogger().handlers, logging.lastResort, logging.getLogger("nicegui"),
                       logging.getLogger("uvicorn.access"), logging.getLogger("sqlalchemy.engine.Engine")):
            assert target is not None
            assert sum(isinstance(f, log_privacy.PrivacyFilter) for f in target.filters) == 1, target
    finally:
        logging.getLogger("uvicorn.error").removeHandler(extra)
        await runtime.stop()


def test_m3_the_grep_finds_each_kind_of_patient_data() -> None:
    """The whole-suite grep below can fail: each kind is found, and look-alikes are not."""
    for line in ("PUT /parse/classes/Patient/DEMO-0002 404", "id=demo-p", "Pat Example", "Blake%20Harrow",
                 "Blake+Harrow", "dob 1950-07-30T00:00:00.000Z", "datetime.datetime(1950, 7, 30, 0, 0)",
                 "born 30/07/1950", "Practised sit-to-stand transfers with verbal cues.",
                 "Daughter worried about stairs at home", "Quinn Sample", "DEMO-Q"):
        assert find_phi(line), line
    for line in ("password demo-password-2026", "lead@demo.invalid", "DEMO-PATIENTS", "DEMO-00021",
                 "1950-07-31", "/patient/vzPSwb0HAG", "[query withheld]"):
        assert not find_phi(line), line


# -- the whole suite's logs ----------------------------------------------------------------------------
@pytest.mark.runs_last
def test_m3_no_log_line_of_the_whole_run_holds_patient_data(session_logs) -> None:
    """Runs after every other test. Alone (or in a partial run) it greps what that run logged: the
    canary below proves the capture works, and a small run is still a real check of what it did."""
    assert session_logs.handler in logging.getLogger().handlers, \
        "the session's log capture was removed from the root logger (something reconfigured logging)"
    canary = f"log capture canary {uuid.uuid4().hex}"
    logging.getLogger("ot_tracker.tests").warning(canary)
    assert any(canary in r.text for r in session_logs.records), "the session's log capture saw nothing"

    offending = []
    records = list(session_logs.records)
    for record in records:
        offending += [f"[pytest process] {record.logger} at {record.where}: {line}"
                      for line in find_phi(record.text)]
    files = session_logs.server_logs()
    checked = {}
    for path in files:
        content = path.read_text(errors="replace")
        checked[str(path)] = len(content)
        offending += [f"[{path}] {line}" for line in find_phi(content)]
    session_logs.finder, session_logs.checked_records, session_logs.checked_files = find_phi, len(records), checked

    everything = session_logs.basetemp / "all-logs-grepped.txt"
    everything.write_text("\n".join(r.text for r in records) + "".join(
        f"\n==== {p} ====\n{p.read_text(errors='replace')}" for p in files))
    assert not offending, (f"{len(offending)} log lines hold patient data (all grepped text: {everything}):\n"
                           + "\n".join(offending[:300]))
