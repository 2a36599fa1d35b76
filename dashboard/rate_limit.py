"""Sign-in attempts per minute, per account and per client address (HTTP 429 beyond either).

This runs in front of the store's own lockout (which locks an account after repeated failures): the
rate limit also slows an attacker who spreads guesses over many accounts from one address, and one
who guesses correctly-spelled usernames fast enough to matter before the lockout counts them.
Kept in memory, per process; the number of tracked keys is bounded. Accounts are counted by their
normalized key (dashboard/names.py): no spelling of a username gets a counter of its own.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

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


class LoginLimiter:
    def __init__(self, per_account: int, per_address: int, *, clock: Callable[[], float] = time.monotonic):
        self.accounts = SlidingWindow(max(per_account, 1), clock=clock)
        self.addresses = SlidingWindow(address_limit(per_account, per_address), clock=clock)

    def check(self, *, username: object, address: str | None) -> int:
        """Seconds to wait (rounded up) when either limit is exceeded; 0 when the attempt may go ahead."""
        wait = self.addresses.hit(address or "unknown")
        if isinstance(username, str) and username:
            wait = max(wait, self.accounts.hit(account_key(username)))
        return math.ceil(wait) if wait else 0


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
