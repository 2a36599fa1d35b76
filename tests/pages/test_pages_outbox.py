"""The pages' raw paths past NiceGUI's public API, and their fallbacks (dashboard/FAST-PATHS.md).

pages/outbox.py replaces NiceGUI's outbox with one that relies on its internals; pages/score_list.py
changes its rows in place and calls its own JavaScript methods. Both run only on the exact NiceGUI
versions in outbox.CHECKED_NICEGUI. The tripwires here fail after a NiceGUI upgrade on purpose:
re-check both modules (and score_list.js) against the new NiceGUI, then add its version. Pages still
work without them, slower.
"""
from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import nicegui
import pytest
from nicegui import ui

from dashboard import fast_paths
from pages import outbox, score_list
from tests.pages import test_pages_pushed_scores as pushed

NICEGUI = Path(nicegui.__file__).parent


def test_the_fast_outbox_installs_on_the_installed_nicegui():
    assert importlib.metadata.version("nicegui") in outbox.CHECKED_NICEGUI
    assert outbox.installable()


def test_a_nicegui_patch_release_is_not_taken_for_a_checked_one(monkeypatch):
    checked = outbox.CHECKED_NICEGUI[0]
    major, minor, patch = checked.split(".")
    monkeypatch.setattr(outbox.importlib.metadata, "version", lambda _name: f"{major}.{minor}.{int(patch) + 1}")
    outbox.nicegui_problem.cache_clear()
    try:
        assert not outbox.installable()
        assert score_list.fast_path_problem() is not None
    finally:
        monkeypatch.undo()
        outbox.nicegui_problem.cache_clear()
    assert outbox.installable()


def test_the_score_lists_raw_path_is_active_and_what_its_javascript_calls_is_still_there():
    assert score_list.fast_path_problem() is None
    assert fast_paths.active()[score_list.NAME] == "in-place state and runMethod calls"
    # score_list.js calls these; simulated users run no JavaScript, so this is the only check.
    nicegui_js = (NICEGUI / "static" / "nicegui.js").read_text()
    assert re.search(r"^function getElement\(id\)", nicegui_js, re.M)
    assert re.search(r"^function runMethod\(target, method_name, args\)", nicegui_js, re.M)
    echart_js = (NICEGUI / "elements" / "echart" / "echart.js").read_text()
    assert re.search(r"^\s+update_chart\(\) \{", echart_js, re.M)
    assert re.search(r"this\.chart\.setOption\(this\.options", echart_js)  # update_chart reads `options`
    # The element filter (and so every simulated user) asks an element what it displays this way.
    assert "_displayed_contents(only_visible=" in (NICEGUI / "element_filter.py").read_text()
    assert ui.element._displayed_contents is not score_list.ScoreList._displayed_contents


PUSHED_SCORE_BEHAVIOURS = [
    pushed.test_a_score_saved_elsewhere_appears_at_its_place_with_its_chart_point,
    pushed.test_a_newest_score_pushes_the_oldest_row_under_show_more,
    pushed.test_marking_a_score_in_error_elsewhere_strikes_it_and_takes_its_point_off_the_chart,
]


@pytest.mark.parametrize("behaviour", PUSHED_SCORE_BEHAVIOURS, ids=lambda f: f.__name__.removeprefix("test_"))
async def test_with_the_score_lists_raw_path_off_pushed_scores_show_as_before(pages_app, monkeypatch, behaviour):
    """The public fallback: the same pushes, as NiceGUI element updates, leave the same page."""
    monkeypatch.setenv(fast_paths.ENV, score_list.NAME)

    def no_raw_calls(self, method: str, args: str) -> None:
        raise AssertionError(f"the raw path ran ({method}) although it is off")

    monkeypatch.setattr(score_list.ScoreList, "_call", no_raw_calls)
    await behaviour(pages_app)
    assert fast_paths.active()[score_list.NAME] == "NiceGUI element updates"
    monkeypatch.delenv(fast_paths.ENV)
    assert score_list.fast_path_problem() is None
