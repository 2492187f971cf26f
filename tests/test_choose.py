"""Choosing a mix: constraints, preferences and knees on small fronts worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from explorer.errors import SoupError
from explorer.frontier.choose import (
    Constraint,
    Measured,
    NoFeasibleMix,
    achievement,
    feasible_mask,
    knee_scores,
    parse_constraint,
    pick_constrained,
    pick_knee,
    pick_preference,
)

MAX, MIN = "maximize", "minimize"
NAN = float("nan")

# Two adapters, two objectives in mixed directions: positive (higher is better), concise (words,
# lower is better). Front: rows 0-4 and 8 (a duplicate of row 2); row 5 is not measured on
# positive; row 6 is dominated by row 2; row 7 ties row 4 on concise but is worse on positive.
# Normalised by the front (positive 0.1..0.9, concise 20..80), the regrets u = (u_pos, u_con) are
#   r0 (0, 1)  r1 (.125, .5)  r2 (.25, 1/6)  r3 (.75, 1/12)  r4 (1, 0).
TWO = np.array(
    [
        [0.9, 80],  # 0
        [0.8, 50],  # 1
        [0.7, 30],  # 2  the knee
        [0.3, 25],  # 3
        [0.1, 20],  # 4
        [NAN, 10],  # 5  not measured on positive
        [0.5, 40],  # 6  dominated by 2
        [0.05, 20],  # 7  weakly dominated by 4
        [0.7, 30],  # 8  same scores as 2
    ]
)
T = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.4, 0.6, 0.9, 0.55])
TWO_LOW = TWO - np.array([0.05, 4.0])
TWO_HIGH = TWO + np.array([0.05, 6.0])  # row 2: concise up to 36, row 3 up to 31


def two(ci: bool = True) -> Measured:
    return Measured(
        weights=np.stack([1 - T, T], axis=1),
        mean=TWO,
        objectives=("positive", "concise"),
        directions=(MAX, MIN),
        adapters=("positive", "concise"),
        ci_low=TWO_LOW if ci else None,
        ci_high=TWO_HIGH if ci else None,
    )


# Three objectives a, b (maximize) and c (minimize), given by their regrets u on a front whose
# ideal is (0, 0, 0) and nadir (1, 1, 1): a = 1 - u1, b = 1 - u2, c = u3.
U3 = np.array(
    [
        [0.0, 1.0, 1.0],  # 0 best on a
        [1.0, 0.0, 1.0],  # 1 best on b
        [1.0, 1.0, 0.0],  # 2 best on c
        [0.2, 0.2, 0.2],  # 3 the knee
        [0.5, 0.5, 0.1],  # 4 on the front, less of a knee
        [0.6, 0.6, 0.6],  # 5 dominated by 3
    ]
)


def three() -> Measured:
    mean = np.stack([1 - U3[:, 0], 1 - U3[:, 1], U3[:, 2]], axis=1)
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(3), size=len(mean))
    return Measured(weights=weights, mean=mean, objectives=("a", "b", "c"), directions=(MAX, MAX, MIN))


# ------------------------------------------------------------------------------------------------
# constraints


def test_constraint_pick_two_objectives_mixed_directions():
    c = pick_constrained(two(), maximize="positive", where=["concise<=40"])
    assert c.index == 2 and c.ties == (8,)  # rows 2 and 8 tie; the lower row wins
    assert c.weights == {"positive": 0.5, "concise": 0.5}
    assert c.scores == {"positive": 0.7, "concise": 30.0}
    assert c.intervals["concise"] == (26.0, 36.0)
    assert c.method == "constraint" and "maximize positive where concise<=40" in c.rule
    assert pick_constrained(two(), maximize="positive", where=["concise<=29"]).index == 3
    assert pick_constrained(two(), maximize="positive", where="concise<29.5").index == 3
    # either sense works whatever the objective's direction
    assert pick_constrained(two(), minimize="concise", where=["positive>=0.75"]).index == 1
    assert pick_constrained(two(), maximize="concise").index == 0
    # no constraint: the best overall (row 5 is not measured on positive, so it never wins concise)
    assert pick_constrained(two(), minimize="concise").index == 4
    assert pick_constrained(two(), minimize="concise").ties == (7,)


def test_constraint_on_intervals_is_conservative():
    mean = pick_constrained(two(), maximize="positive", where=["concise<=35"], bound="mean")
    ci = pick_constrained(two(), maximize="positive", where=["concise<=35"], bound="ci")
    assert mean.index == 2  # mean 30 <= 35
    assert ci.index == 3  # row 2's interval reaches 36; row 3's ends at 31
    assert "bounds on the whole interval" in ci.rule
    # a lower bound tests the interval's low end: positive >= 0.7 on the means keeps rows 0, 1, 2, 8
    assert feasible_mask(two(), ["positive>=0.7"]).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 1]
    assert feasible_mask(two(), ["positive>=0.7"], bound="ci").tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(SoupError, match="no intervals"):
        pick_constrained(two(ci=False), maximize="positive", where=["concise<=35"], bound="ci")


def test_tie_goes_to_the_mix_the_others_do_not_dominate():
    m = Measured(
        weights=[[1, 0], [0, 1], [0.5, 0.5]],
        mean=[[0.9, 50], [0.9, 40], [0.2, 10]],
        objectives=("positive", "concise"),
        directions=(MAX, MIN),
    )
    c = pick_constrained(m, maximize="positive")
    assert c.index == 1 and c.ties == (0,)


def test_infeasible_says_which_constraint_excludes_most_and_the_closest_mix():
    with pytest.raises(NoFeasibleMix) as err:
        pick_constrained(two(), maximize="positive", where=["concise<=28", "positive>=0.5"])
    e = err.value
    # 8 mixes are measured on both objectives (row 5 is not)
    assert e.excluded == {"concise<=28": 5, "positive>=0.5": 3}
    # normalised violations: row 2 misses concise by 2/60, row 6 by 12/60, row 3 positive by .2/.8
    assert e.closest.index == 2 and e.closest.scores == {"positive": 0.7, "concise": 30.0}
    msg = str(e)
    assert "of 8 measured mixes, concise<=28 excludes 5, positive>=0.5 excludes 3" in msg
    assert "Closest: mix 2 (positive=0.5, concise=0.5)" in msg
    assert "concise=30 misses concise<=28 by 2" in msg
    assert "Loosen concise<=28" in msg
    assert isinstance(e, SoupError)


def test_infeasible_ignores_rows_not_measured():
    with pytest.raises(NoFeasibleMix) as err:  # row 5 has concise 10 but no positive
        pick_constrained(two(), maximize="positive", where=["concise<=15"])
    assert err.value.excluded == {"concise<=15": 8}
    assert err.value.closest.index == 4  # concise 20, as row 7, but row 4 is better on positive


def test_unknown_objective_and_bad_calls():
    with pytest.raises(SoupError, match="did you mean 'concise'"):
        pick_constrained(two(), maximize="consice")
    with pytest.raises(SoupError, match="exactly one"):
        pick_constrained(two(), maximize="positive", minimize="concise")
    with pytest.raises(SoupError, match="bound must be"):
        pick_constrained(two(), maximize="positive", bound="median")
    with pytest.raises(SoupError, match="no mix has a mean"):
        pick_constrained(
            Measured(weights=[[1, 0]], mean=[[NAN, 1]], objectives=("a", "b"), directions=(MAX, MAX)),
            maximize="a",
        )


# ------------------------------------------------------------------------------------------------
# the parser


@pytest.mark.parametrize(
    "text", ["concise<=40", " concise <= 40 ", "40>=concise", "concise≤40", "concise<=4e1"]
)
def test_parse_constraint(text):
    assert parse_constraint(text, ["positive", "concise"]) == Constraint("concise", "<=", 40.0)


def test_parse_other_operators():
    assert parse_constraint("positive>0.5") == Constraint("positive", ">", 0.5)
    assert parse_constraint("-0.2<positive") == Constraint("positive", ">", -0.2)
    assert str(parse_constraint("readable>=60")) == "readable>=60"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "conciseness<=40",
            "no objective 'conciseness' \\(did you mean 'concise'\\?\\); the objectives are positive, concise",
        ),
        ("concise=40", "operator '=' is not one of <=, >=, <, >: write e.g. 'positive<=40'"),
        ("concise=<40", "operator '=<' is not one of"),
        ("concise==40", "operator '==' is not one of"),
        ("concise!=40", "operator '!=' is not one of"),
        ("concise<=forty", "'forty' is not a number"),
        ("concise<=", "'' is not a number"),
        ("concise<=nan", "finite number"),
        ("concise<=inf", "finite number"),
        ("concise 40", "has no comparison"),
        ("10<=concise<=40", "has 2 comparisons.*'concise>=10' and 'concise<=40'"),
        ("<=40", "names no objective"),
        ("", "empty constraint"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(SoupError, match=message):
        parse_constraint(text, ["positive", "concise"])


def test_constraint_strings_are_checked_against_the_objectives():
    with pytest.raises(SoupError, match="did you mean 'concise'"):
        pick_constrained(two(), maximize="positive", where=["consise<=40"])


# ------------------------------------------------------------------------------------------------
# preference


def test_preference_two_objectives():
    # s = max(p_pos u_pos, p_con u_con): equal weights give r0 .5, r1 .25, r2 .125, r3 .375, r4 .5
    s = achievement(two(), {"positive": 1, "concise": 1}, rho=0)
    np.testing.assert_allclose(s[[0, 1, 2, 3, 4, 6]], [0.5, 0.25, 0.125, 0.375, 0.5, 0.25])
    assert np.isnan(s[5])
    c = pick_preference(two(), {"positive": 1, "concise": 1})
    assert c.index == 2 and c.ties == (8,) and c.method == "preference"
    assert "positive=0.5, concise=0.5" in c.rule
    # p = (.75, .25): r0 .25, r1 .125, r2 .1875, r3 .5625, r4 .75
    assert pick_preference(two(), {"positive": 3, "concise": 1}).index == 1
    # only concise matters: rows 4 and 7 both have 20 words; the rho term picks 4, which is
    # better on positive (without it they tie)
    c = pick_preference(two(), {"concise": 1})
    assert c.index == 4 and c.ties == ()
    assert pick_preference(two(), {"concise": 1}, rho=0).ties == (7,)


def test_preference_with_constraints_and_aspiration():
    # among mixes with concise <= 28 (rows 3, 4, 7), equal weights pick row 3
    assert pick_preference(two(), {"positive": 1, "concise": 1}, where=["concise<=28"]).index == 3
    ideal = pick_preference(two(), {"positive": 1, "concise": 1}, aspiration={"positive": 0.9, "concise": 20})
    assert ideal.index == 2  # the ideal itself as aspiration changes nothing
    assert "aspiration" in ideal.rule


def test_preference_three_objectives():
    m = three()
    # equal weights: s = max(u) / 3: the knee (row 3) has max regret .2
    assert pick_preference(m, {"a": 1, "b": 1, "c": 1}).index == 3
    assert pick_preference(m, {"c": 1}).index == 2
    assert pick_preference(m, {"a": 1}).index == 0
    assert pick_preference(m, {"b": 5, "c": 0.001}).index == 1


def test_preference_errors():
    with pytest.raises(SoupError, match="at least one objective"):
        pick_preference(two(), {"positive": 0})
    with pytest.raises(SoupError, match=">= 0"):
        pick_preference(two(), {"positive": -1, "concise": 1})
    with pytest.raises(SoupError, match="did you mean 'positive'"):
        pick_preference(two(), {"postive": 1})


# ------------------------------------------------------------------------------------------------
# knee


def test_knee_two_objectives_by_hand():
    # tradeoff mu_i = min_j sacrifice/gain over the regrets listed above TWO:
    # r0: to r1 sacrifices .125 (positive), gains .5 (concise) -> .25
    # r1: to r2 sacrifices .125, gains 1/3 -> .375; r2: to r1 sacrifices 1/3, gains .125 -> 8/3
    # r3: to r2 sacrifices 1/12, gains .5 -> 1/6; r4: to r2 sacrifices 1/6, gains .75 -> 2/9
    mu = knee_scores(two(), method="tradeoff")
    np.testing.assert_allclose(mu[[0, 1, 2, 3, 4, 8]], [0.25, 0.375, 8 / 3, 1 / 6, 2 / 9, 8 / 3])
    assert np.isnan(mu[[5, 6, 7]]).all()
    # distance from the line u_pos + u_con = 1 through the extremes r0 and r4
    d = knee_scores(two(), method="distance")
    np.testing.assert_allclose(d[[0, 1, 2, 3, 4]], np.array([0, 0.375, 7 / 12, 1 / 6, 0]) / np.sqrt(2))
    for method in ("tradeoff", "distance"):
        c = pick_knee(two(), method=method)
        assert (c.index, c.ties, c.method) == (2, (8,), "knee")


def test_knee_three_objectives_by_hand():
    m = three()
    # the extremes (0,1,1), (1,0,1), (1,1,0) span the plane u.(.5,.5,.5) = 1
    d = knee_scores(m, method="distance")
    np.testing.assert_allclose(d[:5], (1 - 0.5 * U3[:5].sum(axis=1)) / np.sqrt(0.75))
    assert np.isnan(d[5])
    # knee: to row 4 it sacrifices .3 + .3 and gains .1 -> 6; to the extremes 1.6 / .2 -> 8
    mu = knee_scores(m, method="tradeoff")
    assert mu[3] == pytest.approx(6.0)
    assert mu[4] == pytest.approx(0.1 / 0.6)  # to row 3
    assert pick_knee(m).index == 3 and pick_knee(m, method="distance").index == 3


def test_knee_with_constraints_and_small_fronts():
    # without rows 0-2 (concise <= 28), the front is rows 3 and 4: a tie broken by the lower row
    c = pick_knee(two(), where=["concise<=28"])
    assert c.index == 3 and c.ties == (4,)
    one = Measured(
        weights=[[1, 0], [0, 1]], mean=[[1, 1], [0, 0]], objectives=("a", "b"), directions=(MAX, MAX)
    )
    assert pick_knee(one).index == 0
    with pytest.raises(NoFeasibleMix):
        pick_knee(two(), where=["concise<=5"])
    with pytest.raises(SoupError, match="knee method"):
        knee_scores(two(), method="elbow")


# ------------------------------------------------------------------------------------------------
# the results dataset of explorer grid


def results_dataset(mean, low, high, weights, objectives, directions) -> xr.Dataset:
    """The per-mix part of a results dataset, laid out as explorer.frontier.evaluation writes it."""
    dims = ("mix", "objective")
    return xr.Dataset(
        {
            "weights": (("mix", "adapter"), weights),
            "mean": (dims, mean),
            "ci_low": (dims, low),
            "ci_high": (dims, high),
            "pareto": ("mix", np.zeros(len(mean), dtype=bool)),
        },
        coords={
            "mix": np.arange(len(mean)),
            "adapter": ["positive", "concise"],
            "objective": list(objectives),
            "direction": ("objective", list(directions)),
        },
    )


def test_works_on_a_results_dataset():
    weights = np.stack([1 - T, T], axis=1)
    ds = results_dataset(TWO, TWO_LOW, TWO_HIGH, weights, ["positive", "concise"], [MAX, MIN])
    c = pick_constrained(ds, maximize="positive", where=["concise<=35"], bound="ci")
    assert c.index == 3 and c.weights == {"positive": 0.25, "concise": 0.75}
    assert c.intervals["concise"] == (21.0, 31.0)
    assert pick_knee(ds).index == 2
    assert pick_preference(ds, {"positive": 3, "concise": 1}).index == 1
    json.dumps(c.to_dict())  # ready for a recipe
    with pytest.raises(SoupError, match="no \\['mean'\\]"):
        Measured.from_dataset(ds.drop_vars("mean"))


def test_measured_validates_its_input():
    with pytest.raises(SoupError, match="directions must be"):
        Measured(weights=[[1, 0]], mean=[[1, 2]], objectives=("a", "b"), directions=("up", MAX))
    with pytest.raises(SoupError, match="2 objectives in the means"):
        Measured(weights=[[1, 0]], mean=[[1, 2]], objectives=("a",), directions=(MAX,))
    with pytest.raises(SoupError, match="weights must be"):
        Measured(weights=[[1, 0], [0, 1]], mean=[[1, 2]], objectives=("a", "b"), directions=(MAX, MAX))
    with pytest.raises(SoupError, match="expected measured mixes"):
        pick_knee(np.zeros((2, 2)))
