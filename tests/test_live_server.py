import json
import urllib.request


def test_server_reports_healthy_on_sqlite(live_server):
    with urllib.request.urlopen(f"{live_server.url}/status") as response:
        body = json.load(response)
    assert body["status"] == "ok" and body["database"] == "sqlite"
