import json
import urllib.request


def test_server_reports_healthy_on_sqlite(live_server):
    with urllib.request.urlopen(f"{live_server.url}/status") as response:
        body = json.load(response)
    assert body["status"] == "ok" and body["database"] == "sqlite"


def test_a_second_server_on_the_same_sqlite_file_is_refused_and_says_why(tmp_path):
    import pytest

    from bench.server import Server
    from tests.support import TEST_SETTINGS, make_live_server

    first = make_live_server(tmp_path)
    first.start()
    try:
        second = Server(first.data_dir, settings=dict(TEST_SETTINGS))
        with pytest.raises(RuntimeError, match="server exited"):
            second.start(timeout=30)
        assert "another OT Tracker server is running on" in second.log_text()
        with urllib.request.urlopen(f"{first.url}/status") as response:  # the first one serves on
            assert json.load(response)["status"] == "ok"
    finally:
        first.stop()
    again = Server(first.data_dir, settings=dict(TEST_SETTINGS))
    again.start()  # the lock went with the first process
    again.stop()
