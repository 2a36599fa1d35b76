"""One row of a patient's score list as a single element (a small Vue component, score_row.js).

A pushed score adds a row to every open page of that patient. Built from NiceGUI's labels, a
row was seven elements, and creating elements is most of what a push costs the server per page;
as one element it costs a fraction. The text is shown by Vue interpolation, never as HTML.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

TEXT_PROPS = ("date", "measure", "sub", "value")


class ScoreRow(ui.element, component="score_row.js"):
    def __init__(self, *, date: str, measure: str, sub: str, value: str, in_error: bool,
                 on_mark: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self._props.update(date=date, measure=measure, sub=sub, value=value, markable=on_mark is not None)
        self.classes("pt-list-row" + (" pt-error" if in_error else ""))
        if on_mark is not None:
            self.on("mark", on_mark)

    def _displayed_contents(self, *, only_visible: bool) -> list:
        # What the row shows, for NiceGUI's element filter (and so the simulated user in tests).
        return [self._props.get(key) for key in TEXT_PROPS]
