"""Issue 25, item 3: the app's grids pass the same budget rule as the CLI (above it a refusal that
names the numbers and what to lower), and a grid no session waits on any more is cancelled."""

from __future__ import annotations

from explorer.app.state import Session
from explorer.frontier.grid import MAX_ROWS


def test_a_grid_above_the_budget_is_refused_with_the_numbers(session, engine):
    before = dict(engine.grids)
    prompts = [f"Question number {i}?" for i in range(200)]
    session.grid_prompt_pool = prompts
    session.grid_prompt_count = 200
    session.grid_resolution = 40
    rows = len(engine.grid_spec(session.sampling, prompts=prompts, resolution=40).mixes) * 200
    assert rows > MAX_ROWS
    session.start_grid()
    assert f"{rows:,} rows is more than {MAX_ROWS:,}" in session.message
    assert "lower the grid's resolution or its number of prompts" in session.message
    assert engine.grids == before and session._grid is None  # nothing started


def test_a_grid_within_the_budget_still_starts(session, engine):
    session.grid_resolution = 1
    session.grid_prompt_count = 1
    session.start_grid()
    assert session._grid is not None and "rows is more than" not in session.message
    spec = engine.grid_spec(session.sampling, prompts=session.grid_prompts(), resolution=1)
    assert engine.check_budget(spec).rows == len(spec.mixes) * 1  # the numbers its start message gives
    engine.wait_grid(120)


def test_a_grid_no_session_waits_on_is_cancelled_when_its_last_session_ends(engine):
    first, second = Session(engine, max_new_tokens=40), Session(engine, max_new_tokens=40)
    try:
        for s in (first, second):
            s.grid_resolution = 3
            s.grid_prompt_count = 1
            s.seed = 7
            s.start_grid()
        run = first._grid
        assert run is second._grid and run.running
        first.close(wait=60)
        assert not run.cancel.is_set()  # the second session still waits on it
        second.close(wait=60)
        assert run.cancel.is_set()  # before: it ran on after every tab had closed
    finally:
        first.close(wait=60)
        second.close(wait=60)
        engine.wait_grid(120)
