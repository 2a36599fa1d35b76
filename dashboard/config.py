"""Settings from environment variables, with safe defaults for a single-machine install.

Each setting is declared once, in `Settings`: its type, its default and its environment variable
(`setting(...)`). `Settings.from_env` reads them all from that declaration. Durations are given in
whole minutes, switches as 1/0 (also true/false, yes/no, on/off), lists comma-separated.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"

_MISSING: Any = dataclasses.MISSING


def setting(env: str, default: Any = _MISSING, *,
            derive: Callable[[Path], Any] | None = None, secret: bool = False) -> Any:
    """One setting: its environment variable and default. `derive` computes the default from the
    data directory when the variable is unset (a field without a plain default must be given when
    Settings is built directly, as tests do). A `secret` is left out of the repr, hence out of logs."""
    return dataclasses.field(default=default, repr=not secret, metadata={"env": env, "derive": derive})


def _default_database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'ot-tracker.sqlite3'}"


def _kept_secret_key(data_dir: Path) -> str:
    """A key generated once and kept in data/, so restarts keep sessions valid."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@dataclass(frozen=True)
class Settings:
    database_url: str = setting("OT_DATABASE_URL", derive=_default_database_url)
    # OT_SECRET_KEY, or one generated once and kept in data/secret_key.
    secret_key: str = setting("OT_SECRET_KEY", derive=_kept_secret_key, secret=True)
    data_dir: Path = setting("OT_DATA_DIR", DATA_DIR)
    host: str = setting("OT_HOST", "127.0.0.1")
    port: int = setting("OT_PORT", 8080)
    parse_app_id: str = setting("OT_PARSE_APP_ID", "ot-tracker")
    session_lifetime: timedelta = setting("OT_SESSION_LIFETIME_MINUTES", timedelta(hours=12))
    session_idle_timeout: timedelta = setting("OT_SESSION_IDLE_MINUTES", timedelta(minutes=30))
    # A shared ward screen (the viewer role, and no other) may stay signed in past both limits.
    viewer_sessions_exempt: bool = setting("OT_VIEWER_SESSIONS_EXEMPT", True)
    lockout_attempts: int = setting("OT_LOCKOUT_ATTEMPTS", 5)
    lockout_window: timedelta = setting("OT_LOCKOUT_WINDOW_MINUTES", timedelta(minutes=15))
    lockout_duration: timedelta = setting("OT_LOCKOUT_MINUTES", timedelta(minutes=15))
    min_password_length: int = setting("OT_MIN_PASSWORD_LENGTH", 12)
    # argon2id cost; tests lower it so hundreds of users hash in milliseconds.
    argon2_memory_kib: int = setting("OT_ARGON2_MEMORY_KIB", 19456)
    argon2_time_cost: int = setting("OT_ARGON2_TIME_COST", 2)
    subscriber_queue_size: int = setting("OT_SUBSCRIBER_QUEUE_SIZE", 256)
    secure_cookies: bool = setting("OT_SECURE_COOKIES", False)
    # Parse API: sign-in attempts per minute for one account, and for one client address
    # (0 for the address means five times the per-account figure); request bodies are capped.
    login_rate_per_minute: int = setting("OT_LOGIN_RATE_PER_MINUTE", 10)
    login_address_rate_per_minute: int = setting("OT_LOGIN_ADDRESS_RATE_PER_MINUTE", 0)
    api_max_body_bytes: int = setting("OT_API_MAX_BODY_BYTES", 1_000_000)
    # Addresses of reverse proxies whose X-Forwarded-For is believed; none by default (uvicorn's own
    # default trusts 127.0.0.1, so anything on the host could pick its address for the rate limits).
    trusted_proxies: tuple[str, ...] = setting("OT_TRUSTED_PROXIES", ())
    # Live-query sockets one client address may hold open at once.
    sockets_per_address: int = setting("OT_SOCKETS_PER_ADDRESS", 256)
    # This instance's name among several on one PostgreSQL (presence, /status); host:port if unset.
    instance_id: str = setting("OT_INSTANCE_ID", "")
    # Another instance's viewers of a page are forgotten when it has not been heard for this long.
    presence_ttl_seconds: int = setting("OT_PRESENCE_TTL_SECONDS", 30)
    # Change-log rows older than this are pruned; an instance that was cut off for longer reloads
    # access and re-reads every subscription (dashboard/changes.py).
    change_log_retention_seconds: int = setting("OT_CHANGE_LOG_RETENTION_SECONDS", 900)

    def __post_init__(self) -> None:
        if not self.secret_key:
            raise ValueError("Settings: secret_key must not be empty (OT_SECRET_KEY)")
        if not self.instance_id:
            object.__setattr__(self, "instance_id", f"{self.host}:{self.port}")  # frozen: set once here

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Every setting from its environment variable (os.environ unless `environ` is given);
        an unset or empty variable takes the default. `overrides` win over both."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, object] = {}
        derived: list[dataclasses.Field[Any]] = []
        for f in dataclasses.fields(cls):
            if f.name in overrides:
                continue
            name, raw = f.metadata["env"], env.get(f.metadata["env"], "")
            if raw != "":
                values[f.name] = _PARSERS[hints[f.name]](name, raw)
            elif f.metadata["derive"] is not None:
                derived.append(f)
        values.update(overrides)
        database_url = values.get("database_url")
        if isinstance(database_url, str) and database_url.startswith("postgresql") and "secret_key" not in values:
            # A key kept in one instance's data directory would sign cookies the other instances refuse.
            raise SystemExit("OT_SECRET_KEY must be set when OT_DATABASE_URL is PostgreSQL: every instance "
                             "on that database must share one key")
        data_dir = Path(values.get("data_dir", DATA_DIR))  # type: ignore[arg-type]
        for f in derived:
            values[f.name] = f.metadata["derive"](data_dir)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment variables that give back these settings through `from_env`."""
        hints = get_type_hints(type(self))
        return {f.metadata["env"]: _FORMATTERS.get(hints[f.name], str)(getattr(self, f.name))
                for f in dataclasses.fields(self)}


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name} must be 1 or 0, got {raw!r}")


def _minutes(name: str, raw: str) -> timedelta:
    return timedelta(minutes=_int(name, raw))


def _names(name: str, raw: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in raw.split(",") if a.strip())


_PARSERS: dict[object, Callable[[str, str], Any]] = {
    str: lambda name, raw: raw,
    int: _int,
    bool: _bool,
    Path: lambda name, raw: Path(raw),
    timedelta: _minutes,
    tuple[str, ...]: _names,
}
_FORMATTERS: dict[object, Callable[[Any], str]] = {
    bool: lambda v: "1" if v else "0",
    timedelta: lambda v: str(int(v.total_seconds() // 60)),
    tuple[str, ...]: ",".join,
}
