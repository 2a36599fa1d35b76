"""The pages' outbox (pages/outbox.py) replaces NiceGUI's with one that relies on its internals."""
from __future__ import annotations

from pages import outbox


def test_the_fast_outbox_installs_on_the_installed_nicegui():
    # Fails after a NiceGUI upgrade on purpose: re-check pages/outbox.py against the new outbox and
    # socket.io, then add the minor version to CHECKED_NICEGUI. (Pages still work without it, slower.)
    assert outbox.installable()
