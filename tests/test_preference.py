"""Learning the trade-off from side-by-side picks (explorer.picks, explorer.frontier.preference)
on fronts built by hand, and ``explorer pick --picks``."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.errors import SoupError
from explorer.frontier.choose import Measured
from explorer.frontier.preference import learn, normalise
from explorer.frontier.results import save_results
from explorer.picks import Pick, append_pick, load_picks, remove_pick
from tests.test_choose import MAX, MIN, results_dataset

OBJECTIVES = ("positive", "concise", "readable")
ADAPTERS = ("positive", "concise", "readable")


def simplex(k: int, steps: int) -> np.ndarray:
    return np.array([c for c in itertools.product(range(steps + 1), repeat=k) if sum(c) == steps]) / steps


W = simplex(3, 6)  # 28 mixes
# Each adapter pushes its own objective: a convex (quarter-sphere) front. concise is in words,
# minimized: 100 words at weight 0, 20 at full weight.
G = W / np.linalg.norm(W, axis=1, keepdims=True)
MEAN = np.stack([G[:, 0], 100 - 80 * G[:, 1], 50 + 50 * G[:, 2]], axis=1)


@pytest.fixture
def measured() -> Measured:
    return Measured(
        weights=W, mean=MEAN, objectives=OBJECTIVES, directions=(MAX, MIN, MAX), adapters=ADAPTERS
    )


def mix(row: int) -> dict[str, float]:
    return dict(zip(ADAPTERS, map(float, W[row]), strict=True))


def consistent_picks(better, pairs: int, seed: int = 0) -> list[Pick]:
    """Random pairs of grid mixes, the winner the one with the higher ``better(row)``."""
    rng = np.random.default_rng(seed)
    picks = []
    for _ in range(pairs):
        a, b = (int(x) for x in rng.choice(len(W), 2, replace=False))
        picks.append(Pick(a=mix(a), b=mix(b), winner="a" if better(a) > better(b) else "b", prompt="p"))
    return picks


def test_a_researcher_who_wants_positive_is_learned(measured):
    learned = learn(measured, consistent_picks(lambda r: MEAN[r, 0], 20))
    lam, ci = learned.lam, learned.lam_ci
    assert lam["positive"] > 0.6 and lam["positive"] > 3 * max(lam["concise"], lam["readable"])
    assert ci["positive"][0] > max(lam["concise"], lam["readable"])  # clearly above the others
    assert abs(sum(lam.values()) - 1) < 1e-9
    assert learned.choice is not None and learned.choice.method == "picks"
    assert learned.choice.weights["positive"] >= 5 / 6  # the recommendation leans all the way to positive
    assert 0 < learned.p_best <= 1 and learned.picks == 20


def test_minimized_objectives_are_turned_around(measured):
    """Preferring fewer words is learned as weight on concise, not against it."""
    learned = learn(measured, consistent_picks(lambda r: -MEAN[r, 1], 20))
    assert max(learned.lam, key=learned.lam.__getitem__) == "concise"
    assert learned.choice is not None and learned.choice.weights["concise"] >= 5 / 6


def test_contradictory_picks_widen_the_intervals(measured):
    picks = consistent_picks(lambda r: MEAN[r, 0], 16)
    flipped = [
        Pick(a=p.a, b=p.b, winner={"a": "b", "b": "a"}[p.winner]) if i % 2 else p for i, p in enumerate(picks)
    ]

    def width(learned):
        return sum(hi - lo for lo, hi in learned.lam_ci.values())

    assert width(learn(measured, flipped)) > 1.3 * width(learn(measured, picks))


def test_ties_between_the_extremes_keep_the_balance(measured):
    extremes = [int(np.argmax(W[:, k])) for k in range(3)]
    ties = [Pick(a=mix(a), b=mix(b), winner="tie") for a, b in itertools.combinations(extremes, 2)] * 3
    learned = learn(measured, ties, utility="linear")
    assert all(abs(x - 1 / 3) < 0.1 for x in learned.lam.values()), learned.lam
    assert learned.choice is not None  # ties are picks: a recommendation
    # a win moves lambda; the same pair tied does not
    won = learn(measured, [Pick(a=mix(extremes[0]), b=mix(extremes[1]), winner="a")] * 3, utility="linear")
    assert won.lam["positive"] > won.lam["concise"] + 0.2


def test_auto_takes_the_utility_the_picks_support(measured):
    """A researcher who prefers the balanced mix to every extreme cannot be linear on this front
    as well as Chebyshev explains it; one who always prefers the more positive mix is linear enough."""
    center = int(np.argmin(np.linalg.norm(W - 1 / 3, axis=1)))
    extremes = [int(np.argmax(W[:, k])) for k in range(3)]
    balanced = [Pick(a=mix(center), b=mix(e), winner="a") for e in extremes] * 3
    learned = learn(measured, balanced)
    assert (
        learned.utility == "chebyshev" and "chebyshev utility (the picks support it" in learned.utility_text
    )
    assert learned.choice is not None and learned.choice.index == center
    assert set(learned.evidence) == {"linear", "chebyshev"}
    assert learn(measured, balanced, utility="linear").utility == "linear"


def test_no_picks_no_recommendation_but_a_first_pair(measured):
    learned = learn(measured, [])
    assert learned.choice is None and learned.picks == 0 and np.isnan(learned.p_best)
    a, b = learned.next_rows
    assert a != b and learned.next_gain > 0
    norm = normalise(measured)
    assert norm.front[np.searchsorted(norm.rows, a)] and norm.front[np.searchsorted(norm.rows, b)]
    assert "lambda" in learned.to_dict() and "weights" not in learned.to_dict()


def test_next_pair_is_among_the_candidates_and_deterministic(measured):
    picks = consistent_picks(lambda r: MEAN[r, 0] + 0.5 * MEAN[r, 2] / 100, 6)
    one, two = learn(measured, picks), learn(measured, picks)
    assert one.next_rows == two.next_rows and one.lam == two.lam  # a fixed seed
    a, b = one.next_rows
    assert a != b and one.next_pair == (mix(a), mix(b))


def test_a_mix_off_the_grid_is_matched_to_the_nearest_and_said(measured):
    off = {"positive": 0.52, "concise": 0.48, "readable": 0.0}
    learned = learn(measured, [Pick(a=off, b=mix(0), winner="a")])
    assert len(learned.notes) == 1
    assert "pick 1: mix a (positive=0.52, concise=0.48, readable=0) is not on the grid" in learned.notes[0]
    assert "positive=0.5, concise=0.5" in learned.notes[0]


def test_picks_that_match_no_measured_mix_are_left_out_and_said(measured):
    good = Pick(a=mix(0), b=mix(27), winner="a")
    picks = [
        Pick(a=mix(0), b={"helpful": 1.0}, winner="a"),  # another frontier's adapter
        Pick(a=mix(0), b={**mix(1), "helpful": 0.0}, winner="a"),  # a zero weight is no adapter: kept
        Pick(a=mix(0), b=mix(1), winner="a", a_method="mod"),  # a method the grid lacks
        Pick(a=mix(0), b={"positive": 5.0}, winner="a"),  # far from every grid mix
        Pick(a=mix(3), b=mix(3), winner="tie"),  # one grid mix twice
        good,
    ]
    learned = learn(measured, picks)
    assert learned.picks == 2 and learned.given == 6
    notes = "\n".join(learned.notes)
    assert "pick 1 left out: mix b names ['helpful'], not among this frontier's adapters" in notes
    assert "pick 3 left out: mix a is a mod mix and this frontier has none" in notes
    assert "pick 4 left out: mix b (positive=5) is far from every grid mix" in notes
    assert "pick 5 left out: both mixes are grid mix 3" in notes
    assert "pick 2" not in notes and "pick 6" not in notes


def test_a_grid_mix_not_measured_yet_is_not_swapped_for_a_neighbour(measured):
    mean = MEAN.copy()
    mean[5, 1] = np.nan  # a grid still running
    partial = Measured(
        weights=W, mean=mean, objectives=OBJECTIVES, directions=(MAX, MIN, MAX), adapters=ADAPTERS
    )
    learned = learn(partial, [Pick(a=mix(0), b=mix(5), winner="a"), Pick(a=mix(0), b=mix(6), winner="b")])
    assert learned.picks == 1 and learned.notes == (
        "pick 1 left out: grid mix 5 (positive=0, concise=0.833, readable=0.167) is not measured yet",
    )


def test_bounds_that_leave_one_mix_recommend_it_without_a_pair(measured):
    top = float(MEAN[:, 0].max())
    learned = learn(measured, consistent_picks(lambda r: MEAN[r, 2], 4), where=[f"positive>={top}"])
    assert learned.choice is not None and learned.choice.scores["positive"] == top
    assert learned.next_pair is None and learned.next_rows is None and learned.to_dict()["next_pair"] is None


def test_a_huge_evidence_gap_is_said_without_overflow(measured):
    learned = learn(measured, consistent_picks(lambda r: MEAN[r, 0], 3))
    gap = dataclasses.replace(learned, evidence={learned.utility: 0.0, "other": -2000.0})
    assert "more than 10^868 times more than other" in gap.utility_text  # exp(2000) overflows a float


# ------------------------------------------------------------------------------------------------
# the picks file


def test_picks_file_round_trip(tmp_path):
    path = tmp_path / "session" / "picks.jsonl"
    assert load_picks(path) == []
    for winner in ("a", "b", "tie"):
        append_pick(path, Pick(a={"x": 0.25}, b={"x": 0.75}, winner=winner, prompt="Hi", seed=3))
    picks = load_picks(path)
    assert [p.winner for p in picks] == ["a", "b", "tie"] and picks[0].seed == 3 and picks[0].time
    assert remove_pick(path, 1).winner == "b"
    assert [p.winner for p in load_picks(path)] == ["a", "tie"]
    with pytest.raises(SoupError, match="no pick 5"):
        remove_pick(path, 4)
    path.write_text("\ufeff" + path.read_text())  # a BOM from an editor
    assert len(load_picks(path)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ('{"a": {"x": 1}, "b": {"x": 0}, "winner": "c"}', "line 2: winner must be 'a', 'b' or 'tie'"),
        ('{"a": {"x": 1}, "winner": "a"}', "line 2: the pick has no b"),
        ('{"a": {"x": NaN}, "b": {"x": 0}, "winner": "a"}', "line 2: not JSON"),
        ('{"a": {"x": true}, "b": {"x": 0}, "winner": "a"}', "line 2: weight x=True is not a number"),
        ('{"a": {"x": 1}, "b": {"x": 0}, "winner": "a", "colour": 1}', r"line 2: unknown keys \['colour'\]"),
        ("[1, 2]", "line 2: a pick is a JSON object"),
        ('{"a": {}, "b": {"x": 0}, "winner": "a"}', "line 2: mix 'a' must be a mapping"),
        ('{"a": {"x": 1e9}, "b": {"x": 0}, "winner": "a"}', r"line 2: weight x=1e\+09 is beyond"),
        ("[" * 100_000, "line 2: not JSON"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number(tmp_path, line, message):
    path = tmp_path / "picks.jsonl"
    path.write_text('{"a": {"x": 1}, "b": {"x": 0}, "winner": "a"}\n' + line + "\n")
    with pytest.raises(SoupError, match=message) as err:
        load_picks(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------
# explorer pick --picks


@pytest.fixture
def front(tmp_path, measured):
    ds = results_dataset(MEAN, MEAN - 0.01, MEAN + 0.01, W[:, :2], list(OBJECTIVES), [MAX, MIN, MAX])
    ds = ds.drop_vars(["weights", "adapter"]).assign(weights=(("mix", "adapter"), W))
    return save_results(ds.assign_coords(adapter=list(ADAPTERS)), tmp_path / "front.nc")


def write_picks(path, picks) -> None:
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in picks))


def test_pick_cli_learns_and_writes_the_choice_file(front, tmp_path, capsys):
    picks, out = tmp_path / "picks.jsonl", tmp_path / "choice.json"
    write_picks(picks, consistent_picks(lambda r: MEAN[r, 0], 20))
    assert main(["pick", "--frontier", str(front), "--picks", str(picks), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "learned from 20 pick(s)" in printed and "trade-off lambda (posterior mean, 95% interval" in printed
    )
    assert "recommended (probability it is the best:" in printed and "compare next: mix" in printed
    assert "explorer export --weights positive=" in printed
    saved = json.loads(out.read_text())
    assert {"weights", "lambda", "lambda_ci", "next_pair", "rule", "scores"} <= set(saved)
    assert set(saved["weights"]) == set(ADAPTERS) and saved["method"] == "picks"
    assert set(saved["lambda"]) == set(OBJECTIVES) and all(len(v) == 2 for v in saved["lambda_ci"].values())
    assert len(saved["next_pair"]) == 2 and all(set(m) == set(ADAPTERS) for m in saved["next_pair"])
    assert saved["lambda"]["positive"] > 0.6


def test_pick_cli_with_no_picks_says_so_and_writes_nothing(front, tmp_path, capsys):
    picks, out = tmp_path / "picks.jsonl", tmp_path / "choice.json"
    picks.write_text("\n")
    assert main(["pick", "--frontier", str(front), "--picks", str(picks), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "no picks in" in captured.err and "no mix to recommend" in captured.err
    assert "compare next: mix" in captured.out  # where to start
    assert not out.exists()


def test_pick_cli_reports_bad_picks_files(front, tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert main(["pick", "--frontier", str(front), "--picks", str(missing)]) == 2
    assert "no picks file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": {"positive": 1}, "b": {"concise": 1}, "winner": "a"}\n{"a": 1}\n')
    assert main(["pick", "--frontier", str(front), "--picks", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # one rule at a time
        main(["pick", "--frontier", str(front), "--picks", str(bad), "--knee"])
    assert "not allowed with argument" in capsys.readouterr().err
