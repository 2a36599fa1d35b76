"""The switch and the start-up report for the fast paths (dashboard/FAST-PATHS.md lists them).

A fast path borrows a dependency's internals for a measured gain. Each one checks at start-up that
the internals are what it was written against, and otherwise its module uses the public API (slower,
same result). `OT_FAST_PATHS_OFF` turns fast paths off by name (comma-separated, or `all`), for a
suspected upgrade problem: nothing else changes. Which path is active is logged once per process.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os

ENV = "OT_FAST_PATHS_OFF"
log = logging.getLogger("ot_tracker.fast_paths")
_reported: dict[str, str] = {}


def switched_off(name: str) -> bool:
    """True when OT_FAST_PATHS_OFF names this fast path (or says `all`)."""
    names = {part.strip() for part in os.environ.get(ENV, "").split(",")}
    return name in names or "all" in names


def version_tuple(distribution: str) -> tuple[int, ...]:
    """The installed version's leading numbers: "0.22.1" -> (0, 22, 1); "2.1.0b1" -> (2, 1, 0)."""
    numbers = []
    for part in importlib.metadata.version(distribution).split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(numbers)


def report(name: str, problem: str | None, *, fast: str, fallback: str) -> None:
    """Logs once per process which path `name` uses: info when fast, a warning with the reason when not."""
    active = fallback if problem else fast
    if _reported.get(name) == active:
        return
    _reported[name] = active
    if problem:
        log.warning("fast path %s is off (%s): using %s", name, problem, fallback)
    else:
        log.info("fast path %s is on: %s", name, fast)


def active() -> dict[str, str]:
    """What each fast path reported last in this process (name -> the path in use)."""
    return dict(_reported)
