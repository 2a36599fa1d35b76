"""Drafts read back from the device: one saved while the read was on the wire is not put back."""
from __future__ import annotations

from pages import drafts as drafts_module
from pages.drafts import Drafts

SAVED = "a" * 32
OPEN = "b" * 32


async def test_a_draft_saved_while_the_device_was_being_read_does_not_come_back(monkeypatch):
    drafts = Drafts("user", "patient")
    sent: list[str] = []

    def run_javascript(code: str, timeout: float | None = None):
        sent.append(code)
        if ".load(" not in code:
            return None

        async def device_answer():
            # The device answered before it heard of the save; the save is confirmed meanwhile.
            drafts.done("score", SAVED)
            return {"score": {"key": SAVED, "values": {"value": "77"}},
                    "note": {"key": OPEN, "values": {"text": "still typing"}}}
        return device_answer()

    monkeypatch.setattr(drafts_module.ui, "run_javascript", run_javascript)
    kept = await drafts.load()
    assert list(kept) == ["note"]  # the saved score's "77" is not written back into the cleared field
    assert kept["note"].values == {"text": "still typing"}
    assert any(".done(" in code and SAVED in code for code in sent)  # the device is still told
