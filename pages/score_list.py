"""A patient's score rows and their "Show more" button as one element (a Vue component, score_list.js).

A pushed score changes every open page of that patient. The rows are a prop that the server changes
in place, sending the page one small `insert` call with the new row (and its chart point): no new
element, no re-sent list or chart. Element updates would cost each page far more per push.
The text is shown by Vue interpolation, never as HTML.

That raw path writes past NiceGUI's observable props and the echart's series, sends the page a
`runMethod` call without `run_method`'s task per call, and its JavaScript calls NiceGUI's
`getElement()` and the echart's `update_chart()`. So it runs only on a NiceGUI that pages/outbox.py's
version gate accepts, unless OT_FAST_PATHS_OFF=score-list. Otherwise the list is an ordinary element:
a change to its observable `state` (and to the chart's options) is an element update NiceGUI sends
itself: more bytes per push, same page.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from dashboard import fast_paths
from pages import outbox

NAME = "score-list"
Row = dict[str, Any]  # id, date, measure, sub, value, error, markable
TEXT_KEYS = ("date", "measure", "sub", "value")


def fast_path_problem() -> str | None:
    """Why the raw path is off for lists built now (None: it is on). Logged once, as decided."""
    problem = f"{fast_paths.ENV} names it" if fast_paths.switched_off(NAME) else outbox.nicegui_problem()
    fast_paths.report(NAME, problem, fast="in-place state and runMethod calls",
                      fallback="NiceGUI element updates")
    return problem


def row_json(row: Row) -> str:
    """A row as the JavaScript literal the page receives (JSON, non-ASCII escaped)."""
    return json.dumps(row, separators=(",", ":"))


class ScoreList(ui.element, component="score_list.js"):
    def __init__(self, rows: list[Row], more: str, *, on_mark: Callable[[str], Any],
                 on_more: Callable[[], Any]) -> None:
        super().__init__()
        self.raw = fast_path_problem() is None
        if self.raw:
            # A plain dict, not NiceGUI's observable one: changing it in place re-sends nothing.
            dict.__setitem__(self._props, "state", {"rows": rows, "more": more})
        else:
            self.props["state"] = {"rows": rows, "more": more}  # observable: each change is an update
        self.on("mark", lambda e: on_mark(e.args))
        self.on("more", lambda _: on_more())

    @property
    def rows(self) -> list[Row]:
        return self._props["state"]["rows"]

    @property
    def more(self) -> str:
        return self._props["state"]["more"]

    def insert(self, index: int | None, row: Row | None, encoded: str, *, drop_last: bool, more: str,
               chart: ui.echart | None = None, point_index: int = 0, point: list | None = None) -> None:
        """A new score: its row at `index` (None: under "Show more"), optionally dropping the last row,
        the "Show more" text, and its point at `point_index` of `chart`'s series."""
        state = self._props["state"]
        if index is not None:
            state["rows"].insert(index, row)
        if drop_last:
            state["rows"].pop()
        state["more"] = more
        series = chart.options["series"][0]["data"] if chart is not None and point is not None else None
        if not self.raw:
            if series is not None:
                series.insert(point_index, point)  # observable: NiceGUI re-sends the chart
            return
        chart_js = "null"
        if series is not None:
            # list.insert: the series is observable, and its change handler would re-send the whole chart.
            list.insert(series, point_index, point)
            chart_js = f'{{"id":{chart.id},"index":{point_index},"point":{json.dumps(point)}}}'
        self._call("insert", f'{"null" if index is None else index},{encoded if index is not None else "null"},'
                             f'{"true" if drop_last else "false"},{json.dumps(more)},{chart_js}')

    def put(self, index: int, row: Row, encoded: str) -> None:
        """Row `index` now shows `row` (a score marked in error)."""
        self._props["state"]["rows"][index] = row
        if self.raw:
            self._call("put", f"{index},{encoded}")

    def _call(self, method: str, args: str) -> None:
        # The raw path only. What run_method sends, without its per-call task and request id (nothing awaits an answer).
        client = self.client
        if not client.is_deleted:
            client.outbox.enqueue_message("run_javascript", {"code": f'runMethod({self.id},"{method}",[{args}])'},
                                          client.id)

    def _displayed_contents(self, *, only_visible: bool) -> list:
        # What the list shows, for NiceGUI's element filter (and so the simulated user in tests); the
        # tripwire in tests/pages/test_pages_outbox.py checks NiceGUI still asks for it.
        return [row[key] for row in self.rows for key in TEXT_KEYS] + [self.more]
