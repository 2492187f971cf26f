"""Choose one mix from the measured ones: by constraints, by preference weights, or at the knee.

Three rules, each returning a ``Choice`` (the rule as text, the chosen mix's weights and scores)
that can go into an exported recipe:

- ``pick_constrained``: maximise (or minimise) one objective subject to bounds on the others,
  e.g. ``where=["concise<=40", "readable>=60"]``. Bounds apply to the means, or (``bound="ci"``,
  conservative) to the whole bootstrap interval: ``x<=40`` then needs ``ci_high<=40``. When no
  mix is feasible, ``NoFeasibleMix`` says how many mixes each bound excludes and which mix
  comes closest.
- ``pick_preference``: the augmented Chebyshev (achievement) scalarisation with the user's
  preference weights, over objectives normalised by the front's ideal and nadir points.
- ``pick_knee``: the knee of the front, by the high trade-off rule of Rachmawati & Srinivasan
  (the rule of ``pymoo.mcdm.high_tradeoff.HighTradeoffPoints``, with every front point as a
  neighbour) or by the distance to the hyperplane through the front's extreme points (Das 1999).

Every rule works on ``Measured`` (plain arrays) or on a results dataset of ``explorer grid``
(``weights``, ``mean``, ``ci_low``, ``ci_high`` and the ``direction`` coordinate; see
``explorer.frontier.evaluation``). Scores are in the objectives' own units and directions; they are
turned "higher is better" inside this module only. A mix with a NaN mean on any objective is
not fully measured and is never chosen. No Panel, HoloViews or Bokeh here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.direction import MAXIMIZE, MINIMIZE
from explorer.errors import SoupError
from explorer.frontier.pareto import pareto_mask

BOUNDS = ("mean", "ci")  # what a constraint bounds: the means, or the whole interval (conservative)
KNEE_METHODS = ("tradeoff", "distance")
_TIE = 1e-12  # relative: values closer than this are a tie


# ------------------------------------------------------------------------------------------------
# the measured mixes


@dataclass(frozen=True)
class Measured:
    """The measured mixes every rule chooses from.

    ``weights`` (M, N) mixing weights, columns in ``adapters`` order; ``mean`` (M, K) mean score
    per mix and objective in the objectives' own units; ``ci_low``/``ci_high`` (M, K) the
    interval bounds (optional; needed for ``bound="ci"``); ``directions`` (K,) ``"maximize"``
    or ``"minimize"``. NaN means mark mixes not (fully) measured.
    """

    weights: np.ndarray
    mean: np.ndarray
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    adapters: tuple[str, ...] = ()  # default: w0, w1, ...
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    mixing: tuple[str, ...] = ()  # (M,) how each mix combines the adapters (soup, mod); default soup

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.ndim != 2:
            raise SoupError(f"means must be a (mixes, objectives) table, got shape {mean.shape}")
        if w.ndim != 2 or w.shape[0] != mean.shape[0]:
            raise SoupError(f"weights must be (mixes={mean.shape[0]}, adapters), got shape {w.shape}")
        objectives, directions = (
            tuple(str(o) for o in self.objectives),
            tuple(str(d) for d in self.directions),
        )
        if len(objectives) != mean.shape[1] or len(directions) != mean.shape[1]:
            raise SoupError(
                f"{mean.shape[1]} objectives in the means, but {len(objectives)} names "
                f"and {len(directions)} directions"
            )
        if len(set(objectives)) != len(objectives):
            raise SoupError(f"objective names must be unique, got {list(objectives)}")
        bad = [d for d in directions if d not in (MAXIMIZE, MINIMIZE)]
        if bad:
            raise SoupError(f"directions must be '{MAXIMIZE}' or '{MINIMIZE}', got {bad}")
        adapters = tuple(str(a) for a in self.adapters) or tuple(f"w{i}" for i in range(w.shape[1]))
        if len(adapters) != w.shape[1]:
            raise SoupError(f"{w.shape[1]} weight columns but {len(adapters)} adapter names")
        ci = []
        for name in ("ci_low", "ci_high"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=np.float64)
                if arr.shape != mean.shape:
                    raise SoupError(f"{name} must have the means' shape {mean.shape}, got {arr.shape}")
            ci.append(arr)
        mixing = tuple(str(m) for m in self.mixing) or ("soup",) * w.shape[0]
        if len(mixing) != w.shape[0]:
            raise SoupError(f"{len(mixing)} mixing methods given for {w.shape[0]} mixes")
        for name, value in zip(
            ("weights", "mean", "objectives", "directions", "adapters", "ci_low", "ci_high", "mixing"),
            (w, mean, objectives, directions, adapters, *ci, mixing),
            strict=True,
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_dataset(cls, ds) -> Measured:
        """The measured mixes of a results dataset (``explorer grid``'s netCDF, ``xarray.load_dataset``)."""
        missing = [v for v in ("weights", "mean") if v not in ds] + (
            [] if "direction" in ds.coords else ["direction"]
        )
        if missing:
            raise SoupError(
                f"the results have no {missing}: pass a dataset written by explorer grid "
                "(or summarized with explorer.frontier.summarize)"
            )

        def table(name):
            return ds[name].transpose("mix", "objective").values if name in ds else None

        return cls(
            weights=ds["weights"].transpose("mix", "adapter").values,
            mean=table("mean"),
            objectives=tuple(str(o) for o in ds["objective"].values),
            directions=tuple(str(d) for d in ds["direction"].values),
            adapters=tuple(str(a) for a in ds["adapter"].values),
            ci_low=table("ci_low"),
            ci_high=table("ci_high"),
            mixing=tuple(str(m) for m in ds["method"].values) if "method" in ds.coords else (),
        )

    def only(self, mixing: str) -> Measured:
        """The same mixes with only those combined by ``mixing`` left measured (the others' means
        are NaN, so every rule passes them over; rows keep their indices)."""
        if mixing not in self.mixing:
            raise SoupError(
                f"no mix of method {mixing!r} in these results: they hold {sorted(set(self.mixing))}"
            )
        return self.restricted(np.array([m == mixing for m in self.mixing]))

    def restricted(self, keep: np.ndarray) -> Measured:
        """The same mixes with only those where ``keep`` (M,) is True left measured (the others'
        means are NaN, so every rule passes them over; rows keep their indices)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.mean.shape[0],):
            raise SoupError(f"keep must be one flag per mix, ({self.mean.shape[0]},), got {keep.shape}")

        def masked(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.where(keep[:, None], a, np.nan)

        return dataclasses.replace(
            self,
            mean=np.where(keep[:, None], self.mean, np.nan),
            ci_low=masked(self.ci_low),
            ci_high=masked(self.ci_high),
        )

    @property
    def signs(self) -> np.ndarray:
        """(K,) +1 for maximized objectives, -1 for minimized ones."""
        return np.array([1.0 if d == MAXIMIZE else -1.0 for d in self.directions])

    @property
    def valid(self) -> np.ndarray:
        """(M,) mixes with a finite mean on every objective."""
        return np.isfinite(self.mean).all(axis=1)

    def index_of(self, objective: str) -> int:
        if objective not in self.objectives:
            raise SoupError(f"no objective {objective!r}{_did_you_mean(objective, self.objectives)}")
        return self.objectives.index(objective)

    def choice(self, i: int, *, method: str, rule: str, ties: Sequence[int] = ()) -> Choice:
        intervals = None
        if self.ci_low is not None and self.ci_high is not None:
            intervals = {
                o: (float(self.ci_low[i, k]), float(self.ci_high[i, k]))
                for k, o in enumerate(self.objectives)
            }
        return Choice(
            method=method,
            rule=rule,
            index=int(i),
            weights={a: float(self.weights[i, n]) for n, a in enumerate(self.adapters)},
            scores={o: float(self.mean[i, k]) for k, o in enumerate(self.objectives)},
            intervals=intervals,
            ties=tuple(int(t) for t in ties),
            mixing=self.mixing[i],
        )


def as_measured(data) -> Measured:
    """``data`` as ``Measured``: itself, or read from a results dataset."""
    if isinstance(data, Measured):
        return data
    if hasattr(data, "data_vars"):
        return Measured.from_dataset(data)
    raise SoupError(
        f"expected measured mixes (explorer.frontier.choose.Measured) or a results dataset, got {type(data).__name__}"
    )


@dataclass(frozen=True)
class Choice:
    """A chosen mix and how it was chosen (JSON-ready with ``to_dict``, for a recipe)."""

    method: str  # "constraint" | "preference" | "knee"
    rule: str  # the rule in words, e.g. "maximize positive where concise<=40 (bounds on the means)"
    index: int  # the mix's row in the measured mixes
    weights: dict[str, float]  # adapter -> mixing weight
    scores: dict[str, float]  # objective -> mean score, in the objective's units
    intervals: dict[str, tuple[float, float]] | None = None  # objective -> (ci_low, ci_high)
    ties: tuple[int, ...] = ()  # other mixes the rule rates exactly as high (the lowest row wins)
    mixing: str = "soup"  # how the mix combines the adapters: soup (weights) or mod (decoding time)

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "mixing": self.mixing,
            "rule": self.rule,
            "index": self.index,
            "weights": dict(self.weights),
            "scores": {k: _json_float(v) for k, v in self.scores.items()},
            "ties": list(self.ties),
        }
        if self.intervals is not None:
            out["intervals"] = {k: [_json_float(a), _json_float(b)] for k, (a, b) in self.intervals.items()}
        return out


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


# ------------------------------------------------------------------------------------------------
# constraints


_OPS = {"<=": "<=", ">=": ">=", "<": "<", ">": ">", "≤": "<=", "≥": ">="}
_FLIP = {"<=": ">=", ">=": "<=", "<": ">", ">": "<"}
_OP_RE = re.compile(r"<=|>=|=<|=>|==|!=|≤|≥|<|>|=")


@dataclass(frozen=True)
class Constraint:
    """``objective op value``, op one of ``<=``, ``>=``, ``<``, ``>``; value in the objective's units."""

    objective: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _FLIP:
            raise SoupError(f"constraint operator must be one of <=, >=, <, >, got {self.op!r}")
        if not math.isfinite(self.value):
            raise SoupError(f"constraint bound must be a finite number, got {self.value}")

    def __str__(self) -> str:
        return f"{self.objective}{self.op}{self.value:g}"

    def _values(self, m: Measured, bound: str) -> np.ndarray:
        """(M,) what is compared with the bound: the mean or the interval's unfavourable end."""
        k = m.index_of(self.objective)
        if bound == "mean":
            return m.mean[:, k]
        if m.ci_low is None or m.ci_high is None:
            raise SoupError("these results have no intervals (ci_low, ci_high): bound the means instead")
        return (m.ci_low if self.op in (">=", ">") else m.ci_high)[:, k]

    def satisfied(self, m: Measured, bound: str = "mean") -> np.ndarray:
        """(M,) bool; False where the value is NaN."""
        x = self._values(m, bound)
        with np.errstate(invalid="ignore"):
            return {"<=": x <= self.value, ">=": x >= self.value, "<": x < self.value, ">": x > self.value}[
                self.op
            ]

    def violation(self, m: Measured, bound: str = "mean") -> np.ndarray:
        """(M,) how far each mix is from meeting the bound, in the objective's units (0 when met, NaN)."""
        x = self._values(m, bound)
        gap = (self.value - x) if self.op in (">=", ">") else (x - self.value)
        return np.where(np.isnan(gap), np.nan, np.maximum(gap, 0.0))


def parse_constraint(text: str, objectives: Sequence[str] | None = None) -> Constraint:
    """``"concise<=40"`` (or ``"40>=concise"``) as a ``Constraint``; checks the name against ``objectives``."""
    example = f"write e.g. '{objectives[0] if objectives else 'concise'}<=40'"
    if not isinstance(text, str) or not text.strip():
        raise SoupError(f"empty constraint {text!r}: {example}")
    ops = _OP_RE.findall(text)
    if not ops:
        raise SoupError(f"constraint {text!r} has no comparison (<=, >=, <, >): {example}")
    if len(ops) > 1:
        raise SoupError(
            f"constraint {text!r} has {len(ops)} comparisons; give one per constraint "
            f"(a range such as 10<=concise<=40 is two: 'concise>=10' and 'concise<=40')"
        )
    op = ops[0]
    if op not in _OPS:
        raise SoupError(f"constraint {text!r}: operator {op!r} is not one of <=, >=, <, >: {example}")
    left, right = (s.strip() for s in _OP_RE.split(text, maxsplit=1))
    op = _OPS[op]
    if _is_number(left) and not _is_number(right):  # "40>=concise"
        left, right, op = right, left, _FLIP[op]
    if not left:
        raise SoupError(f"constraint {text!r} names no objective: {example}")
    if objectives is not None and left not in objectives:
        raise SoupError(
            f"constraint {text!r}: no objective {left!r}{_did_you_mean(left, objectives)}; "
            f"the objectives are {', '.join(objectives)}"
        )
    if not _is_number(right):
        raise SoupError(f"constraint {text!r}: {right!r} is not a number: {example}")
    value = float(right)
    if not math.isfinite(value):
        raise SoupError(f"constraint {text!r}: the bound must be a finite number, got {right!r}")
    return Constraint(left, op, value)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _constraints(m: Measured, where: Sequence[str | Constraint]) -> list[Constraint]:
    if isinstance(where, str | Constraint):
        where = [where]
    out = []
    for c in where:
        c = c if isinstance(c, Constraint) else parse_constraint(c, m.objectives)
        m.index_of(c.objective)
        out.append(c)
    return out


def _check_bound(bound: str) -> None:
    if bound not in BOUNDS:
        raise SoupError(f"bound must be 'mean' (bound the means) or 'ci' (the whole interval), got {bound!r}")


def feasible_mask(data, where: Sequence[str | Constraint] = (), *, bound: str = "mean") -> np.ndarray:
    """(M,) mixes fully measured that meet every constraint (on the means, or ``bound="ci"``: the interval)."""
    _check_bound(bound)
    m = as_measured(data)
    ok = m.valid.copy()
    for c in _constraints(m, where):
        ok &= c.satisfied(m, bound)
    return ok


def _where_text(constraints: Sequence[Constraint], bound: str) -> str:
    if not constraints:
        return ""
    on = "the means" if bound == "mean" else "the whole interval"
    return f" where {' and '.join(map(str, constraints))} (bounds on {on})"


class NoFeasibleMix(SoupError):
    """No measured mix meets the constraints. ``excluded`` maps each constraint (as text) to the
    number of measured mixes it excludes; ``closest`` is the mix nearest to meeting them all."""

    def __init__(self, message: str, *, excluded: dict[str, int], closest: Choice | None):
        super().__init__(message)
        self.excluded = excluded
        self.closest = closest


def pick_constrained(
    data,
    *,
    maximize: str | None = None,
    minimize: str | None = None,
    where: Sequence[str | Constraint] = (),
    bound: str = "mean",
) -> Choice:
    """The measured mix with the best mean on one objective among those that meet ``where``.

    Give exactly one of ``maximize``/``minimize`` (an objective's name; either sense works
    whatever its direction). ``where``: constraints like ``"concise<=40"`` (strings or
    ``Constraint``), all of which must hold, on the means (``bound="mean"``) or on the whole
    interval (``bound="ci"``: ``>=`` tests ``ci_low``, ``<=`` tests ``ci_high``). Ties on the
    target go to a mix not dominated by the other tied ones, then to the lowest row. Raises
    ``NoFeasibleMix`` (a ``SoupError``) when no mix meets the constraints.
    """
    _check_bound(bound)
    m = as_measured(data)
    if (maximize is None) == (minimize is None):
        raise SoupError(
            f"give exactly one objective to maximize or minimize, got maximize={maximize!r}, minimize={minimize!r}"
        )
    sense, target = ("maximize", maximize) if maximize is not None else ("minimize", str(minimize))
    k = m.index_of(target)
    constraints = _constraints(m, where)
    rule = f"{sense} {target}{_where_text(constraints, bound)}"
    valid = m.valid
    if not valid.any():
        raise SoupError("no mix has a mean on every objective yet: finish (or resume) the grid first")
    ok = valid.copy()
    for c in constraints:
        ok &= c.satisfied(m, bound)
    value = m.mean[:, k] * (1.0 if maximize is not None else -1.0)
    if not ok.any():
        raise _infeasible(m, constraints, bound, rule, value, valid)
    best, ties = _best(value, ok, m)
    return m.choice(best, method="constraint", rule=rule, ties=ties)


def _best(score: np.ndarray, candidates: np.ndarray, m: Measured) -> tuple[int, list[int]]:
    """The row of the highest ``score`` (M,) among ``candidates``; ties go to a row not dominated by
    the other tied rows (all objectives), then to the lowest row. Returns (row, the other tied rows)."""
    rows = np.flatnonzero(candidates)
    top = score[rows].max()
    tied = rows[score[rows] >= top - _TIE * max(1.0, abs(top))]
    if len(tied) > 1:
        undominated = tied[pareto_mask(m.mean[tied], m.directions)]
        first = int(undominated[0]) if len(undominated) else int(tied[0])
    else:
        first = int(tied[0])
    return first, [int(t) for t in tied if t != first]


def _infeasible(
    m: Measured, constraints: list[Constraint], bound: str, rule: str, value: np.ndarray, valid: np.ndarray
) -> NoFeasibleMix:
    n = int(valid.sum())
    excluded = {str(c): int((valid & ~c.satisfied(m, bound)).sum()) for c in constraints}
    # Closest: the smallest sum of violations, each in units of its objective's range over the mixes.
    total = np.zeros(len(valid))
    for c in constraints:
        x = c._values(m, bound)[valid]
        span = float(np.nanmax(x) - np.nanmin(x)) if np.isfinite(x).any() else 0.0
        total += np.nan_to_num(c.violation(m, bound), nan=np.inf) / (span if span > 0 else 1.0)
    total[~valid] = np.inf
    closest = None
    parts = ", ".join(f"{c} excludes {excluded[str(c)]}" for c in constraints)
    worst = max(excluded, key=lambda c: excluded[c])
    message = f"no measured mix meets {rule}: of {n} measured mixes, {parts}"
    if np.isfinite(total).any():
        near = total <= np.min(total) + _TIE
        i, _ = _best(value, near, m)
        closest = m.choice(i, method="constraint", rule=f"closest to: {rule}")
        misses = [
            f"{c.objective}={c._values(m, bound)[i]:.4g} misses {c} by {c.violation(m, bound)[i]:.3g}"
            for c in constraints
            if c.violation(m, bound)[i] > 0
        ]
        weights = ", ".join(f"{a}={w:g}" for a, w in closest.weights.items())
        message += f". Closest: mix {i} ({weights}), where {'; '.join(misses) or 'a strict bound is met with equality'}"
    message += f". Loosen {worst} (it excludes the most), or refine the grid near the closest mix."
    return NoFeasibleMix(message, excluded=excluded, closest=closest)


# ------------------------------------------------------------------------------------------------
# normalisation by the front


@dataclass(frozen=True)
class _Front:
    """The candidates' front in normalised "regret" coordinates: 0 at the ideal, 1 at the nadir."""

    rows: np.ndarray  # (C,) candidate rows
    pareto: np.ndarray  # (C,) bool, Pareto-optimal among the candidates
    regret: np.ndarray  # (C, K) (ideal - f) / (ideal - nadir), f oriented higher-is-better
    ideal: np.ndarray  # (K,) oriented
    span: np.ndarray  # (K,) ideal - nadir (1 where the front is flat)


def _front(m: Measured, candidates: np.ndarray) -> _Front:
    rows = np.flatnonzero(candidates)
    if len(rows) == 0:
        raise SoupError("no mix to choose from: none is fully measured, or the constraints exclude all")
    f = m.mean[rows] * m.signs  # (C, K) higher is better
    pareto = pareto_mask(m.mean[rows], m.directions)
    ideal, nadir = f[pareto].max(axis=0), f[pareto].min(axis=0)
    span = np.where(ideal > nadir, ideal - nadir, 1.0)
    return _Front(rows, pareto, (ideal - f) / span, ideal, span)


def _candidates(m: Measured, where, bound: str) -> tuple[np.ndarray, str]:
    _check_bound(bound)
    constraints = _constraints(m, where)
    ok = m.valid.copy()
    for c in constraints:
        ok &= c.satisfied(m, bound)
    if m.valid.any() and not ok.any():
        value = np.zeros(len(ok))
        raise _infeasible(
            m, constraints, bound, f"the constraints{_where_text(constraints, bound)}", value, m.valid
        )
    return ok, _where_text(constraints, bound)


# ------------------------------------------------------------------------------------------------
# preference


def achievement(
    data,
    preferences: Mapping[str, float],
    *,
    aspiration: Mapping[str, float] | None = None,
    where: Sequence[str | Constraint] = (),
    bound: str = "mean",
    rho: float = 1e-6,
) -> np.ndarray:
    """(M,) augmented Chebyshev achievement of every mix, lower is better; NaN for non-candidates.

    s = max_k p_k u_k + rho * sum_k u_k, with u_k = (z_k - f_k) / (ideal_k - nadir_k): f the
    mix's mean turned higher-is-better, ideal and nadir those of the candidates' Pareto front
    (so u runs from 0 at the ideal to 1 at the nadir on the front), z the ideal or the
    ``aspiration`` point (objective -> level, own units), p the ``preferences`` (objective ->
    weight >= 0, missing ones 0) scaled to sum 1. A larger p_k makes falling short on objective k
    cost more. The rho term makes the minimiser Pareto-optimal (not only weakly).
    """
    m = as_measured(data)
    p = _preferences(m, preferences)
    ok, _ = _candidates(m, where, bound)
    front = _front(m, ok)
    u = front.regret
    if aspiration:
        z = np.array(front.ideal)
        for name, level in aspiration.items():
            k = m.index_of(name)
            z[k] = float(level) * m.signs[k]
        u = u - (front.ideal - z) / front.span
    out = np.full(len(ok), np.nan)
    out[front.rows] = (p * u).max(axis=1) + rho * u.sum(axis=1)
    return out


def _preferences(m: Measured, preferences: Mapping[str, float]) -> np.ndarray:
    p = np.zeros(len(m.objectives))
    for name, weight in preferences.items():
        weight = float(weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise SoupError(f"preference weight for {name!r} must be a finite number >= 0, got {weight}")
        p[m.index_of(name)] = weight
    if p.sum() <= 0:
        raise SoupError(
            f"give a positive preference weight to at least one objective ({', '.join(m.objectives)}), "
            "e.g. {'positive': 2, 'concise': 1}"
        )
    return p / p.sum()


def pick_preference(
    data,
    preferences: Mapping[str, float],
    *,
    aspiration: Mapping[str, float] | None = None,
    where: Sequence[str | Constraint] = (),
    bound: str = "mean",
    rho: float = 1e-6,
) -> Choice:
    """The mix that best matches the ``preferences`` (objective -> weight): the minimiser of
    ``achievement`` (see there), among the fully measured mixes that meet ``where``."""
    m = as_measured(data)
    s = achievement(m, preferences, aspiration=aspiration, where=where, bound=bound, rho=rho)
    p = _preferences(m, preferences)
    prefs = ", ".join(f"{o}={w:.3g}" for o, w in zip(m.objectives, p, strict=True))
    _, where_text = _candidates(m, where, bound)
    rule = f"closest to the ideal with preferences {prefs} (augmented Chebyshev, objectives normalised by the front's ideal and nadir)"
    if aspiration:
        rule += f", aspiration {', '.join(f'{k}={v:g}' for k, v in aspiration.items())}"
    rule += where_text
    best, ties = _best(-s, np.isfinite(s), m)
    return m.choice(best, method="preference", rule=rule, ties=ties)


# ------------------------------------------------------------------------------------------------
# knee


def knee_scores(
    data, *, method: str = "tradeoff", where: Sequence[str | Constraint] = (), bound: str = "mean"
) -> np.ndarray:
    """(M,) how much of a knee each Pareto-optimal mix is (higher is more); NaN off the front.

    On the candidates' front, normalised to regrets u in [0, 1] (0 at the ideal, 1 at the nadir):

    - ``"tradeoff"`` (Rachmawati & Srinivasan 2009; pymoo's ``HighTradeoffPoints`` with every front
      point as a neighbour): mu_i = min over other front points j of sacrifice / gain, where
      moving from i to j sacrifices sum_k max(0, u_jk - u_ik) and gains sum_k max(0, u_ik - u_jk).
      Leaving a knee sacrifices much for any gain. mu is 0 for a front of one point.
    - ``"distance"`` (Das 1999): the signed distance from the hyperplane through the K extreme
      points (each the front point best on one objective) towards the ideal; the plane
      sum_k u_k = 1 when the extremes do not span one.

    Equal score rows (duplicate mixes) share one score.
    """
    if method not in KNEE_METHODS:
        raise SoupError(f"knee method must be one of {', '.join(KNEE_METHODS)}, got {method!r}")
    m = as_measured(data)
    ok, _ = _candidates(m, where, bound)
    front = _front(m, ok)
    u = front.regret[front.pareto]  # (P, K)
    unique, inverse = np.unique(u, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    if method == "tradeoff":
        score = _tradeoff(unique)
    else:
        score = _hyperplane_distance(unique)
    out = np.full(len(ok), np.nan)
    out[front.rows[front.pareto]] = score[inverse]
    return out


def _tradeoff(u: np.ndarray) -> np.ndarray:
    """(P,) min over j != i of sacrifice / gain for unique non-dominated regrets ``u`` (P, K)."""
    if len(u) == 1:
        return np.zeros(1)
    diff = u[None, :, :] - u[:, None, :]  # (i, j, K): u_j - u_i
    sacrifice = np.maximum(diff, 0.0).sum(axis=2)
    gain = np.maximum(-diff, 0.0).sum(axis=2)  # > 0 off the diagonal: no front point dominates another
    ratio = np.full_like(sacrifice, np.inf)
    np.divide(sacrifice, gain, out=ratio, where=gain > 0)
    np.fill_diagonal(ratio, np.inf)
    return ratio.min(axis=1)


def _hyperplane_distance(u: np.ndarray) -> np.ndarray:
    """(P,) signed distance of ``u`` (P, K) from the plane n.u = 1 through the extreme points."""
    k = u.shape[1]
    extremes = np.stack([u[np.lexsort((u.sum(axis=1), u[:, j]))[0]] for j in range(k)])  # (K, K)
    normal = np.ones(k)
    if np.linalg.matrix_rank(extremes) == k:
        solved = np.linalg.solve(extremes, np.ones(k))
        if np.all(np.isfinite(solved)) and np.all(solved > 0):
            normal = solved
    return (1.0 - u @ normal) / np.linalg.norm(normal)


def pick_knee(
    data, *, method: str = "tradeoff", where: Sequence[str | Constraint] = (), bound: str = "mean"
) -> Choice:
    """The knee of the front: the Pareto-optimal mix with the highest ``knee_scores``."""
    m = as_measured(data)
    score = knee_scores(m, method=method, where=where, bound=bound)
    _, where_text = _candidates(m, where, bound)
    rule = {
        "tradeoff": "knee of the front: highest trade-off (the least gain per unit of sacrifice "
        "to any other front mix, objectives normalised by the front's ideal and nadir)",
        "distance": "knee of the front: farthest from the hyperplane through the extreme mixes "
        "(objectives normalised by the front's ideal and nadir)",
    }[method] + where_text
    best, ties = _best(score, np.isfinite(score), m)
    return m.choice(best, method="knee", rule=rule, ties=ties)


__all__ = [
    "BOUNDS",
    "KNEE_METHODS",
    "Choice",
    "Constraint",
    "Measured",
    "NoFeasibleMix",
    "achievement",
    "as_measured",
    "feasible_mask",
    "knee_scores",
    "parse_constraint",
    "pick_constrained",
    "pick_knee",
    "pick_preference",
]
