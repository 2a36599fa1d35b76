"""An open patient page applies a score saved elsewhere from the push itself (no re-read, no
re-render), and what it then shows is exactly what opening the page afresh shows."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from nicegui import ui
from nicegui.element import Element

from tests.support import eventually

DAY = timedelta(days=1)
START = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def _one(user, marker: str) -> Element:
    elements = user.find(marker=marker).elements
    assert elements, f"nothing marked {marker}"
    return next(iter(elements))


def _scores_card(user) -> Element:
    return _one(user, "scores")


ID_PROPS = ("id", "for", "target")  # name other elements by id (a label's input, a tooltip's anchor)


def shown(element: Element) -> Any:
    """What an element puts on screen: tag, classes, style, props, text and children, recursively
    (element ids left out: they differ between two pages showing the same thing)."""
    props = {k: v for k, v in element.props.items() if k not in ID_PROPS}
    return (element.tag, tuple(element.classes), tuple(sorted(element.style.items())), repr(sorted(props.items())),
            getattr(element, "text", None), tuple(element._markers),  # noqa: SLF001 - marks name the rows
            tuple(shown(child) for child in element.default_slot.children))


def _rows(user) -> list[dict]:
    """The rows the list shows, top to bottom."""
    return _one(user, "score-list").props["state"]["rows"]


def _row_ids(user) -> list[str]:
    return [row["id"] for row in _rows(user)]


def _row(user, score_id: str) -> dict:
    return next(row for row in _rows(user) if row["id"] == score_id)


async def _shows_row(user, score_id: str) -> None:
    """Waits until the pushed score's row is in the list."""
    await eventually(lambda: score_id in _row_ids(user))


def _chart_points(user, score_type: str) -> list[list]:
    chart = _one(user, f"chart-{score_type}")
    assert isinstance(chart, ui.echart)
    return chart.options["series"][0]["data"]


async def _seed_scores(w, count: int) -> list:
    """`count` Barthel scores a day apart, oldest first, by the patient's therapist."""
    return [await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel",
                                       value=40 + i, score_date=START + i * DAY) for i in range(count)]


async def _same_as_a_fresh_page(pages_app, name: str, live) -> None:
    fresh = await pages_app.signed_in(name)
    await fresh.open(f"/patient/{pages_app.world.patient.id}")
    assert shown(_scores_card(live)) == shown(_scores_card(fresh))


async def test_a_score_saved_elsewhere_appears_at_its_place_with_its_chart_point(pages_app):
    w = pages_app.world
    seeded = await _seed_scores(w, 10)
    lead = await pages_app.signed_in("lead")
    await lead.open(f"/patient/{w.patient.id}")
    await lead.should_see("Show more (2 older)")
    chart = _one(lead, "chart-barthel")

    # Dated between the 6th and 7th newest: the list shows 8, so it lands in the middle.
    middle = START + 3 * DAY + timedelta(hours=5)
    score = await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel",
                                       value=33, score_date=middle, notes="Walked to the window")
    await lead.should_see("Walked to the window", retries=30)

    newest_first = [s.id for s in reversed(seeded)]
    assert _row_ids(lead) == (newest_first[:6] + [score.id] + newest_first[6:])[:8]
    await lead.should_see("Show more (3 older)")
    assert _one(lead, "chart-barthel") is chart  # the chart was updated, not rebuilt
    assert [p[1] for p in _chart_points(lead, "barthel")] == [40.0, 41.0, 42.0, 43.0, 33.0, 44.0, 45.0, 46.0,
                                                               47.0, 48.0, 49.0]
    await _same_as_a_fresh_page(pages_app, "lead", lead)


async def test_a_value_half_typed_in_the_form_survives_someone_elses_save(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=50)
    await owner.should_see(marker="chart-barthel", retries=30)
    _one(owner, "score-measure").value = "berg"
    _one(owner, "score-value").value = 44
    score = await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=51)
    await _shows_row(owner, score.id)
    assert _one(owner, "score-measure").value == "berg"
    assert _one(owner, "score-value").value == 44


async def test_a_newest_score_pushes_the_oldest_row_under_show_more(pages_app):
    w = pages_app.world
    seeded = await _seed_scores(w, 8)
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_not_see("Show more")
    score = await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                       value=55, score_date=START + 20 * DAY)
    await owner.should_see("Show more (1 older)", retries=30)
    assert _row_ids(owner) == [score.id] + [s.id for s in reversed(seeded)][:7]
    await _same_as_a_fresh_page(pages_app, "owner", owner)


async def test_marking_a_score_in_error_elsewhere_strikes_it_and_takes_its_point_off_the_chart(pages_app):
    w = pages_app.world
    seeded = await _seed_scores(w, 3)
    await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="berg", value=30,
                               score_date=START)
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    chart = _one(owner, "chart-barthel")
    await w.store.mark_score_in_error(principal=w.lead, score_id=seeded[1].id, reason="wrong patient")
    await owner.should_see("Entered in error: wrong patient", retries=30)
    assert _row(owner, seeded[1].id)["error"] is True
    assert [p[1] for p in _chart_points(owner, "barthel")] == [40.0, 42.0]
    assert _one(owner, "chart-barthel") is chart
    await _same_as_a_fresh_page(pages_app, "owner", owner)


async def test_a_first_score_and_a_new_measure_show_their_charts_as_a_fresh_page_does(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("No scores recorded yet.")
    await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="tug", value=13.5)
    await owner.should_see("13.5 s", retries=30)
    await owner.should_not_see("No scores recorded yet.")
    await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=70)
    await owner.should_see(marker="chart-barthel", retries=30)
    await owner.should_see(marker="chart-tug")
    await _same_as_a_fresh_page(pages_app, "owner", owner)


async def test_a_viewer_has_no_patient_page_to_push_scores_to(pages_app):
    """A ward screen reaches only the ward board (issue 16; its pushes: tests/pages/test_viewer_pages.py)."""
    w = pages_app.world
    await _seed_scores(w, 2)
    await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel",
                               value=77, notes="Private score note")
    viewer = await pages_app.signed_in("viewer")
    response = await viewer.http_client.get(f"/patient/{w.patient.id}")
    assert response.status_code == 404 and "Private score note" not in response.text



async def test_only_the_recorder_or_a_lead_gets_the_mark_in_error_control_and_it_works(pages_app):
    w = pages_app.world
    mine = await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel", value=60)
    theirs = await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=61)
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    assert _row(owner, mine.id)["markable"] is True
    assert _row(owner, theirs.id)["markable"] is False
    owner.find(marker="score-list").trigger("mark", theirs.id)  # a forged click on a row without the button
    await owner.should_not_see("Mark score entered in error")
    owner.find(marker="score-list").trigger("mark", mine.id)
    await owner.should_see("Mark score entered in error")
    _one(owner, "error-reason").value = "typo"
    owner.find(marker="error-save").click()
    await owner.should_see("Entered in error: typo", retries=30)
    assert _row(owner, mine.id)["markable"] is False


async def test_show_more_lists_older_scores_and_a_push_keeps_the_count(pages_app):
    w = pages_app.world
    seeded = await _seed_scores(w, 30)
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("Show more (22 older)")
    owner.find(marker="score-list").trigger("more")
    await owner.should_see("Show more (6 older)")
    assert _row_ids(owner) == [s.id for s in reversed(seeded)][:24]
    score = await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                       value=80, score_date=START + 40 * DAY)
    await owner.should_see("Show more (7 older)", retries=30)
    assert _row_ids(owner) == [score.id] + [s.id for s in reversed(seeded)][:23]
