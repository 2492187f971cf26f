"""The app's Choose panel state without a browser: bounds grey out mixes, rules pick one, Load puts
it on the sliders, and an export of it carries the choice in its recipe."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import yaml

from explorer.app.choose_state import Chooser
from explorer.frontier.choose import Measured, pick_knee
from explorer.frontier.grid import GridSpec, weight_grid
from explorer.frontier.results import empty_results, fill_rows, summarize
from explorer.objectives import BUILTINS
from tests.tiny import LETTERS, TINY_PROMPTS

NAMES = ("helpful", "concise", "positive")
PROMPTS = TINY_PROMPTS
# The mixes of weight_grid(NAMES, 2) and their mean scores: concise (words, minimized), letters
# (maximized). Front: mixes 0-4; mix 5 is dominated by mix 1, mix 6 by mix 3. Each mean is the
# average of two prompts' scores, mean -/+ SPREAD, so the intervals are [mean - d, mean + d].
MEANS = np.array([[10, 20], [20, 50], [30, 60], [40, 90], [50, 95], [25, 30], [60, 70]], dtype=float)
SPREAD = np.array([2.0, 3.0])


def synthetic_front(objectives=(BUILTINS["concise"], LETTERS)) -> object:
    """A complete, summarized results dataset of the tiny soup's 7-mix grid with the scores above."""
    spec = GridSpec(mixes=weight_grid(NAMES, 2), prompts=PROMPTS, objectives=tuple(objectives))
    ds = empty_results(spec, adapters=NAMES, fingerprint={})
    rows = [(m, p, 0) for m in range(len(MEANS)) for p in range(2)]
    scores = np.array([MEANS[m] + (SPREAD if p else -SPREAD) for m, p, _ in rows])
    fill_rows(ds, rows, ["a response"] * len(rows), [3] * len(rows), [True] * len(rows), scores)
    ds.attrs["complete"] = 1
    return summarize(ds)


@pytest.fixture
def chooser(session):
    c = Chooser(session=session)
    yield c
    c.close()


def test_without_a_frontier_nothing_is_chosen(chooser):
    assert chooser.choice is None and chooser.feasible is None
    assert "compute the frontier" in chooser.problem


def test_bounds_exclude_mixes_and_the_rule_picks_among_the_rest(chooser, session):
    session.results = synthetic_front()
    assert chooser.ranges == {"concise": (8.0, 62.0), "letters": (17.0, 98.0)}  # means and interval ends
    assert chooser.feasible.tolist() == [True] * 7  # no bound moved yet
    chooser.method = "constraint"
    chooser.target = "letters"
    assert chooser.choice.index == 4 and chooser.choice.method == "constraint"
    chooser.set_limit("concise", 35)  # at most 35 words
    assert chooser.feasible.tolist() == [True, True, True, False, False, True, False]
    assert chooser.choice.index == 2 and chooser.choice.weights == dict(zip(NAMES, [0, 1, 0], strict=True))
    assert "maximize letters where concise<=35 (bounds on the means)" in chooser.choice.rule
    chooser.set_limit("concise", 31)  # mix 2: mean 30, but its interval reaches 32
    assert chooser.choice.index == 2
    chooser.bound = "ci"
    assert chooser.feasible.tolist() == [True, True, False, False, False, True, False]
    assert chooser.choice.index == 1
    chooser.set_limit("letters", 98.0)  # the top of its range: no interval lies wholly above it
    assert chooser.choice is None and chooser.feasible.tolist() == [False] * 7
    assert "no measured mix meets" in chooser.problem and "Closest: mix" in chooser.problem
    chooser.clear_limits()
    assert chooser.feasible.all() and chooser.choice.index == 4


def test_a_slider_at_the_loose_end_bounds_nothing(chooser, session):
    session.results = synthetic_front()
    chooser.set_limit("concise", 62.0)  # the top of concise's range: at most 62 words excludes nothing
    chooser.set_limit("letters", 17.0)  # the bottom of letters' range
    assert chooser.constraints() == [] and chooser.feasible.all()
    chooser.bound = "ci"
    assert chooser.feasible.all()  # every interval lies inside the range too


def test_preference_and_knee(chooser, session):
    ds = synthetic_front()
    session.results = ds
    chooser.preferences = {"concise": 1.0, "letters": 0.0}
    assert chooser.choice.index == 0 and chooser.choice.method == "preference"
    chooser.preferences = {"concise": 0.0, "letters": 1.0}
    assert chooser.choice.index == 4
    chooser.method = "knee"
    assert chooser.choice.index == pick_knee(Measured.from_dataset(ds)).index
    assert chooser.choice.method == "knee"
    chooser.set_limit("letters", 55)  # the knee of what is left
    assert chooser.choice.index == pick_knee(Measured.from_dataset(ds), where=["letters>=55"]).index
    chooser.knee_method = "distance"  # the other knee rule, with the same bound
    expected = pick_knee(Measured.from_dataset(ds), method="distance", where=["letters>=55"])
    assert chooser.choice.index == expected.index and "hyperplane" in chooser.choice.rule


def test_a_new_frontier_recomputes_the_choice(chooser, session):
    session.results = synthetic_front()
    chooser.method = "constraint"
    chooser.target = "concise"
    assert chooser.choice.index == 0
    partial = synthetic_front()
    partial["mean"].values[0] = np.nan  # a grid still running: mix 0 not measured yet
    session.results = partial
    assert chooser.choice.index == 1 and not chooser.feasible[0]
    session.results = None
    assert chooser.choice is None and chooser.ranges == {}


def test_load_puts_the_choice_on_the_sliders_and_into_the_export(engine, chooser, session):
    session.results = synthetic_front()
    chooser.method = "constraint"
    chooser.target = "letters"
    chooser.set_limit("concise", 45)
    chosen = chooser.choice
    assert chosen.index == 3
    chooser.load()
    assert session.weights == pytest.approx(chosen.weights)
    assert session.choice == chosen.to_dict()
    session.export(wait=True)
    with zipfile.ZipFile(io.BytesIO(open(session.export_zip, "rb").read())) as zf:
        recipe = yaml.safe_load(zf.read(next(n for n in zf.namelist() if n.endswith("recipe.yaml"))))
    assert recipe["choice"]["rule"] == chosen.rule and recipe["choice"]["index"] == 3
    assert recipe["choice"]["weights"] == pytest.approx(recipe["weights"])
    session.set_weight("helpful", 0.2)  # the sliders leave the chosen mix: exports no longer carry it
    assert session.choice is None
