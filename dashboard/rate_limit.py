"""Sign-in attempts per minute, per account and per client address (HTTP 429 beyond either).

This runs in front of the store's own lockout (which locks an account after repeated failures): the
rate limit also slows an attacker who spreads guesses over many accounts from one address, and one
who guesses correctly-spelled usernames fast enough to matter before the lockout counts them.
Accounts are counted by their normalized key (dashboard/names.py): no spelling of a username gets
a counter of its own. One limiter serves every channel (pages, REST, GraphQL): the store applies it.
On SQLite (one process) it is kept in memory, bounded in keys. On PostgreSQL every instance shares
one, in the `login_attempts` table, or an attacker would get N times the attempts behind a
balancer: SharedLoginLimiter (SCALE-OUT.md §4 "Rate limits").
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import text

from dashboard.names import account_key

MAX_KEYS = 50_000
WINDOW_SECONDS = 60.0


class SlidingWindow:
    """At most `limit` hits per key in any window of `window` seconds."""

    def __init__(self, limit: int, *, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float:
        """Counts one attempt; returns 0 when allowed, else the seconds until one would be."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(self.window - (now - hits[0]), 0.001)
        hits.append(now)
        return 0.0


def address_limit(per_account: int, per_address: int) -> int:
    """Attempts per minute from one address: as configured, or five accounts' worth."""
    return max(per_address or 5 * per_account, 1)


class SignInLimiter(Protocol):
    async def check(self, *, username: object, address: str | None) -> int:
        """Seconds to wait (rounded up) when a limit is exceeded; 0 when the attempt may go ahead."""
        ...


class LoginLimiter:
    """In memory, for one process (SQLite)."""

    def __init__(self, per_account: int, per_address: int, *, clock: Callable[[], float] = time.monotonic):
        self.accounts = SlidingWindow(max(per_account, 1), clock=clock)
        self.addresses = SlidingWindow(address_limit(per_account, per_address), clock=clock)

    async def check(self, *, username: object, address: str | None) -> int:
        """Seconds to wait (rounded up) when either limit is exceeded; 0 when the attempt may go ahead."""
        wait = self.addresses.hit(address or "unknown")
        if isinstance(username, str) and username:
            wait = max(wait, self.accounts.hit(account_key(username)))
        return math.ceil(wait) if wait else 0


# One statement per attempt: both keys' counts for this minute go up by one (atomically, whichever
# instance runs it), and come back with the previous minute's, read from the same snapshot.
_COUNT_ATTEMPT = text("""
WITH counted AS (
    INSERT INTO login_attempts (key, minute, hits) VALUES (:address_key, :minute, 1), (:account_key, :minute, 1)
    ON CONFLICT (key, minute) DO UPDATE SET hits = login_attempts.hits + 1
    RETURNING key, hits)
SELECT counted.key, counted.hits, coalesce(previous.hits, 0)
FROM counted LEFT JOIN login_attempts previous ON previous.key = counted.key AND previous.minute = :minute - 1
""")
_COUNT_ADDRESS = text("""
WITH counted AS (
    INSERT INTO login_attempts (key, minute, hits) VALUES (:address_key, :minute, 1)
    ON CONFLICT (key, minute) DO UPDATE SET hits = login_attempts.hits + 1
    RETURNING key, hits)
SELECT counted.key, counted.hits, coalesce(previous.hits, 0)
FROM counted LEFT JOIN login_attempts previous ON previous.key = counted.key AND previous.minute = :minute - 1
""")
_PRUNE = text("DELETE FROM login_attempts WHERE minute < :minute - 1")


class SharedLoginLimiter:
    """The same limits, counted in PostgreSQL and shared by every instance on it.

    A minute's count plus the previous minute's weighted by the share of it still inside the last
    60 s approximates the sliding window (Cloudflare's and nginx's "sliding log" estimate). Refused
    attempts count too: one statement, and someone hammering stays refused.
    """

    def __init__(self, db: Any, per_account: int, per_address: int, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.per_account = max(per_account, 1)
        self.per_address = address_limit(per_account, per_address)
        self.clock = clock
        self._pruned_minute = 0

    async def check(self, *, username: object, address: str | None) -> int:
        now = self.clock()
        minute, into = divmod(now, WINDOW_SECONDS)
        minute = int(minute)
        keys = {"address_key": f"a:{address or 'unknown'}"[:200], "minute": minute}
        counted = _COUNT_ADDRESS
        if isinstance(username, str) and username:
            keys["account_key"] = f"u:{account_key(username)}"[:200]
            counted = _COUNT_ATTEMPT
        async with self.db.write() as session:
            rows = (await session.execute(counted, keys)).all()
            if minute > self._pruned_minute:  # once a minute per instance: the table stays two minutes long
                self._pruned_minute = minute
                await session.execute(_PRUNE, {"minute": minute})
            await session.commit()
        remaining = 1.0 - into / WINDOW_SECONDS
        for key, hits, previous in rows:
            limit = self.per_address if key == keys["address_key"] else self.per_account
            if hits + previous * remaining > limit:
                return max(math.ceil(WINDOW_SECONDS - into), 1)  # the current minute's end
        return 0


class ConcurrencyLimit:
    """At most `limit` requests at once per key (an account): heavy work cannot pile up for one caller."""

    def __init__(self, limit: int):
        self.limit = limit
        self._running: dict[str, int] = {}

    def try_acquire(self, key: str) -> bool:
        running = self._running.get(key, 0)
        if running >= self.limit:
            return False
        self._running[key] = running + 1
        return True

    def release(self, key: str) -> None:
        left = self._running.pop(key, 1) - 1
        if left > 0:
            self._running[key] = left
