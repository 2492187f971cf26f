"""Picks in a real Chromium, on the tiny soup and the frontier worked out by hand: "Compare these
next" pins the suggested pair, and two picks move the recommendation's ring and update lambda."""

from __future__ import annotations

import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from tests.test_app_choose import MEANS, synthetic_front
from tests.tiny import tiny_app_engine
from tests.ui.test_app_ui import TIMEOUT, on_page, serve
from tests.ui.test_choose_ui import layer_points

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    with tiny_app_engine(tmp_path_factory.mktemp("picks-ui")) as engine:
        yield engine


@pytest.fixture
def explorer(page, tiny_engine):
    made = []

    def factory():
        made.append(Explorer(tiny_engine, max_new_tokens=6))
        return made[-1].template()

    serve(page, factory)
    wait_until(lambda: len(made) == 1, page, timeout=TIMEOUT)
    s = made[0].session
    wait_until(lambda: bool(s.response_for) and not s.generating, page, timeout=TIMEOUT)
    yield made[0]
    s.close(wait=60)


def lambda_text(page) -> str:
    return page.locator(".learned table.lambda").inner_text()


def test_two_picks_move_the_ring_and_update_lambda(page, explorer):
    s, board = explorer.session, explorer.board
    on_page(s, lambda: setattr(s, "results", synthetic_front()))
    wait_until(lambda: board.learned is not None, page, timeout=TIMEOUT)
    assert layer_points(page, "recommended") == []  # nothing recommended before a pick
    page.get_by_text("no picks yet: judge two pinned responses").wait_for(timeout=TIMEOUT * 1000)

    page.locator(".compare-next button").click()  # mixes 0 and 4: the two ends of the front
    wait_until(
        lambda: len(s.pinned) == 2 and not any(p["partial"] for p in s.pinned) and not s.refreshing_pins,
        page,
        timeout=TIMEOUT,
    )
    assert [board.a, board.b] == [0, 1]
    page.get_by_text("which response do you prefer?").wait_for(timeout=TIMEOUT * 1000)

    page.get_by_role("button", name="A better").click()
    wait_until(lambda: len(board.picks) == 1, page, timeout=TIMEOUT)
    first = board.learned
    assert first.choice is not None and first.choice.index == 0  # A: the most concise mix
    wait_until(lambda: layer_points(page, "recommended") == [list(MEANS[0])], page, timeout=TIMEOUT)
    wait_until(lambda: f"{first.lam['concise']:.2f}" in lambda_text(page), page, timeout=TIMEOUT)
    assert first.lam["concise"] > first.lam["letters"]

    page.get_by_role("button", name="B better").click()  # the same pair, now the other way
    wait_until(lambda: len(board.picks) == 2, page, timeout=TIMEOUT)
    second = board.learned
    assert second.choice is not None and second.choice.index != 0
    wait_until(
        lambda: layer_points(page, "recommended") == [list(MEANS[second.choice.index])], page, timeout=TIMEOUT
    )
    assert second.lam["letters"] > first.lam["letters"]
    wait_until(lambda: f"{second.lam['letters']:.2f}" in lambda_text(page), page, timeout=TIMEOUT)
    assert page.locator(".pick-line").count() == 2

    page.locator(".load-recommended button").click()
    wait_until(lambda: s.weights == second.choice.weights, page, timeout=TIMEOUT)
