"""Settings from environment variables, with safe defaults for a single-machine install."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _secret_key(data_dir: Path) -> str:
    """OT_SECRET_KEY, or one generated once and kept in data/ so restarts keep sessions valid."""
    given = os.environ.get("OT_SECRET_KEY")
    if given:
        return given
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
    database_url: str
    secret_key: str
    data_dir: Path = DATA_DIR
    host: str = "127.0.0.1"
    port: int = 8080
    parse_app_id: str = "ot-tracker"
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle_timeout: timedelta = timedelta(minutes=30)
    # A shared ward screen (the viewer role, and no other) may stay signed in past both limits.
    viewer_sessions_exempt: bool = True
    lockout_attempts: int = 5
    lockout_window: timedelta = timedelta(minutes=15)
    lockout_duration: timedelta = timedelta(minutes=15)
    min_password_length: int = 12
    # argon2id cost; tests lower it so hundreds of users hash in milliseconds.
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    subscriber_queue_size: int = 256
    secure_cookies: bool = False
    # Parse API: sign-in attempts per minute for one account, and for one client address
    # (0 for the address means five times the per-account figure); request bodies are capped.
    login_rate_per_minute: int = 10
    login_address_rate_per_minute: int = 0
    api_max_body_bytes: int = 1_000_000
    # Addresses of reverse proxies whose X-Forwarded-For is believed; none by default (uvicorn's own
    # default trusts 127.0.0.1, so anything on the host could pick its address for the rate limits).
    trusted_proxies: tuple[str, ...] = ()
    # Live-query sockets one client address may hold open at once.
    sockets_per_address: int = 256
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        data_dir = Path(os.environ.get("OT_DATA_DIR", str(DATA_DIR)))
        values: dict[str, object] = dict(
            database_url=os.environ.get(
                "OT_DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'ot-tracker.sqlite3'}"
            ),
            secret_key=_secret_key(data_dir),
            data_dir=data_dir,
            host=os.environ.get("OT_HOST", "127.0.0.1"),
            port=_int("OT_PORT", 8080),
            parse_app_id=os.environ.get("OT_PARSE_APP_ID", "ot-tracker"),
            session_lifetime=timedelta(minutes=_int("OT_SESSION_LIFETIME_MINUTES", 12 * 60)),
            session_idle_timeout=timedelta(minutes=_int("OT_SESSION_IDLE_MINUTES", 30)),
            viewer_sessions_exempt=os.environ.get("OT_VIEWER_SESSIONS_EXEMPT", "1") == "1",
            lockout_attempts=_int("OT_LOCKOUT_ATTEMPTS", 5),
            lockout_window=timedelta(minutes=_int("OT_LOCKOUT_WINDOW_MINUTES", 15)),
            lockout_duration=timedelta(minutes=_int("OT_LOCKOUT_MINUTES", 15)),
            secure_cookies=os.environ.get("OT_SECURE_COOKIES", "0") == "1",
            login_rate_per_minute=_int("OT_LOGIN_RATE_PER_MINUTE", 10),
            login_address_rate_per_minute=_int("OT_LOGIN_ADDRESS_RATE_PER_MINUTE", 0),
            api_max_body_bytes=_int("OT_API_MAX_BODY_BYTES", 1_000_000),
            sockets_per_address=_int("OT_SOCKETS_PER_ADDRESS", 256),
            trusted_proxies=tuple(a.strip() for a in os.environ.get("OT_TRUSTED_PROXIES", "").split(",") if a.strip()),
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
