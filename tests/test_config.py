"""Settings: each declared once, with one environment variable, and read back from the environment."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard.config import Settings


def test_every_setting_has_exactly_one_environment_variable_of_its_own() -> None:
    fields = dataclasses.fields(Settings)
    names = [f.metadata.get("env") for f in fields]
    assert all(isinstance(n, str) and n.startswith("OT_") for n in names), names
    assert len(set(names)) == len(fields)


def test_settings_read_from_the_environment_come_back_the_same(tmp_path: Path) -> None:
    # A value unlike its default for every field, so a variable that is not read would show.
    changed = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}", secret_key="round-trip-secret",
        data_dir=tmp_path, host="0.0.0.0", port=9090, parse_app_id="other-app",
        session_lifetime=timedelta(hours=3), session_idle_timeout=timedelta(minutes=7),
        viewer_sessions_exempt=False, lockout_attempts=9, lockout_window=timedelta(minutes=4),
        lockout_duration=timedelta(minutes=6), min_password_length=16, argon2_memory_kib=512,
        argon2_time_cost=3, subscriber_queue_size=64, secure_cookies=True, login_rate_per_minute=3,
        login_address_rate_per_minute=8, api_max_body_bytes=2048,
        trusted_proxies=("10.0.0.1", "10.0.0.2"), sockets_per_address=12, instance_id="node-2",
        presence_ttl_seconds=10, change_log_retention_seconds=120)
    defaults = Settings(database_url="x", secret_key="y")
    for f in dataclasses.fields(Settings):
        assert getattr(changed, f.name) != getattr(defaults, f.name), f.name

    environ = changed.to_env()
    assert len(environ) == len(dataclasses.fields(Settings))
    assert Settings.from_env(environ) == changed


def test_unset_variables_take_the_defaults_and_the_key_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = Settings.from_env({"OT_DATA_DIR": str(tmp_path)})
    defaults = Settings(database_url="x", secret_key="y", data_dir=tmp_path)
    for f in dataclasses.fields(Settings):
        if f.name not in ("database_url", "secret_key"):
            assert getattr(first, f.name) == getattr(defaults, f.name), f.name
    assert first.database_url == f"sqlite+aiosqlite:///{tmp_path / 'ot-tracker.sqlite3'}"
    assert len(first.secret_key) >= 48
    assert (tmp_path / "secret_key").read_text().strip() == first.secret_key
    assert Settings.from_env({"OT_DATA_DIR": str(tmp_path)}).secret_key == first.secret_key
    assert first.secret_key not in repr(first)


def test_the_old_switch_and_duration_spellings_still_read_the_same(tmp_path: Path) -> None:
    s = Settings.from_env({"OT_DATA_DIR": str(tmp_path), "OT_SECRET_KEY": "k", "OT_VIEWER_SESSIONS_EXEMPT": "0",
                           "OT_SECURE_COOKIES": "1", "OT_SESSION_LIFETIME_MINUTES": "90",
                           "OT_TRUSTED_PROXIES": " 10.0.0.1 , ,10.0.0.2"})
    assert (s.viewer_sessions_exempt, s.secure_cookies) == (False, True)
    assert s.session_lifetime == timedelta(minutes=90)
    assert s.trusted_proxies == ("10.0.0.1", "10.0.0.2")


def test_overrides_win_over_the_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"OT_DATA_DIR": str(tmp_path), "OT_SECRET_KEY": "k", "OT_PORT": "9000"}, port=9001)
    assert s.port == 9001


@pytest.mark.parametrize("name, raw", [("OT_PORT", "eighty"), ("OT_SECURE_COOKIES", "maybe"),
                                       ("OT_SESSION_IDLE_MINUTES", "1.5")])
def test_a_malformed_value_stops_start_up_and_names_the_variable(tmp_path: Path, name: str, raw: str) -> None:
    with pytest.raises(SystemExit, match=name):
        Settings.from_env({"OT_DATA_DIR": str(tmp_path), "OT_SECRET_KEY": "k", name: raw})


def test_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="OT_SECRET_KEY"):
        Settings(database_url="x", secret_key="")


def test_postgresql_needs_a_shared_secret_key(tmp_path):
    import pytest

    from dashboard.config import Settings

    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/x"
    with pytest.raises(SystemExit, match="OT_SECRET_KEY must be set"):
        Settings.from_env({"OT_DATABASE_URL": url, "OT_DATA_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()  # no key made for one instance alone
    settings = Settings.from_env({"OT_DATABASE_URL": url, "OT_DATA_DIR": str(tmp_path), "OT_SECRET_KEY": "shared"})
    assert settings.secret_key == "shared"
    assert Settings.from_env({"OT_DATA_DIR": str(tmp_path)}).secret_key  # SQLite keeps its own, as before
