"""Learn the researcher's trade-off from side-by-side picks, and recommend the mix.

The model. Every measured mix x has normalised scores g(x) in the objectives (1 at the front's
ideal, 0 at its nadir, higher is better; the normalisation of ``explorer.frontier.choose``). The
researcher has an unknown trade-off lambda on the simplex (lambda_k >= 0, sum 1) and a utility

- ``linear``:    U(x) = sum_k lambda_k g_k(x)
- ``chebyshev``: U(x) = -(max_k lambda_k u_k(x) + rho * sum_k u_k(x)),  u = 1 - g (augmented
  Chebyshev: the worst shortfall, weighted, counts; rho small)

and picks the response of mix a over that of b with probability sigmoid(beta * (U(a) - U(b)))
(Bradley-Terry / logistic choice); "about the same" counts as half a win each. beta, how
consistently the researcher picks, is unknown too.

The fit. Prior: lambda ~ Dirichlet(1, ..., 1) (uniform on the simplex), beta log-uniform on
[BETA_LOW, BETA_HIGH]. The posterior is represented by weighted samples: importance sampling
with the prior as proposal, then one adaptation round whose proposal is a defensive mixture of
the prior and a Dirichlet matched to the first round's weighted moments (``scipy.stats``
densities; no optimiser). Weighted samples give at once lambda's posterior mean and 95% interval,
each mix's expected utility and its probability of being the best, the evidence of each utility
(``auto`` takes the utility the picks support better), and the expected information of comparing
any two mixes (for "compare these next").

No Panel, HoloViews or Bokeh here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit, logsumexp

from explorer.errors import SoupError
from explorer.frontier.choose import Choice, Measured, as_measured, feasible_mask
from explorer.frontier.pareto import pareto_mask
from explorer.picks import Pick

UTILITIES = ("linear", "chebyshev")
UTILITY_CHOICES = (*UTILITIES, "auto")
RHO = 0.05  # the augmented Chebyshev utility's sum term
BETA_LOW, BETA_HIGH = 2.0, 200.0  # the prior range of beta: a utility gap of 0.05 picks right 52%..100%
SAMPLES = 12_000  # posterior samples per round
MATCH_TOLERANCE = 1e-6  # a pick's mix this close (L2 on weights) to a grid mix is that mix
CANDIDATES = 12  # "compare these next" looks at pairs among this many leading mixes


# ------------------------------------------------------------------------------------------------
# the measured mixes, normalised


@dataclass(frozen=True)
class Normalised:
    """The fully measured mixes' scores, normalised by their Pareto front.

    ``g`` (M, K): 1 at the front's ideal, 0 at its nadir, higher is better (NaN rows: not fully
    measured); ``rows`` (C,) the mixes a recommendation may be (measured, meeting the bounds);
    ``front`` (C,) which of them are Pareto-optimal among themselves.
    """

    measured: Measured
    g: np.ndarray
    rows: np.ndarray
    front: np.ndarray


def normalise(data, where: Sequence[str] = (), *, bound: str = "mean") -> Normalised:
    """The mixes of ``data`` (``Measured`` or a results dataset) normalised by the measured front;
    ``where``: bounds (``"concise<=40"``) a recommended mix must meet (``choose.feasible_mask``)."""
    m = as_measured(data)
    valid = m.valid
    if not valid.any():
        raise SoupError("no mix has a mean on every objective yet: finish (or resume) the grid first")
    f = m.mean * m.signs  # (M, K) higher is better
    pareto = pareto_mask(m.mean[valid], m.directions)
    ideal, nadir = f[valid][pareto].max(axis=0), f[valid][pareto].min(axis=0)
    span = np.where(ideal > nadir, ideal - nadir, 1.0)
    g = np.where(valid[:, None], (f - nadir) / span, np.nan)
    ok = feasible_mask(m, where, bound=bound)
    rows = np.flatnonzero(ok)
    if len(rows) == 0:
        raise SoupError("no measured mix meets the bounds: loosen them to get a recommendation")
    return Normalised(m, g, rows, pareto_mask(m.mean[rows], m.directions))


def utilities(g: np.ndarray, lam: np.ndarray, utility: str) -> np.ndarray:
    """(S, M) utility of each of the M mixes' normalised scores ``g`` (M, K) under each of the S
    trade-offs ``lam`` (S, K)."""
    check_utility(utility, auto=False)
    if utility == "linear":
        return lam @ g.T
    u = 1.0 - g  # (M, K) shortfall from the ideal
    out = np.empty((len(lam), len(g)))
    step = max(1, 2_000_000 // max(1, u.size))  # samples per block: the (block, M, K) array stays small
    for i in range(0, len(lam), step):
        out[i : i + step] = (lam[i : i + step, None, :] * u[None, :, :]).max(axis=2)
    return -(out + RHO * u.sum(axis=1)[None, :])


def check_utility(utility: str, *, auto: bool = True) -> str:
    allowed = UTILITY_CHOICES if auto else UTILITIES
    if utility not in allowed:
        raise SoupError(f"utility must be one of {', '.join(allowed)}, got {utility!r}")
    return utility


# ------------------------------------------------------------------------------------------------
# picks on the grid


@dataclass(frozen=True)
class Comparison:
    """A pick as rows of the measured mixes: ``a`` vs ``b``, ``score`` 1 (a won), 0 (b won) or 0.5."""

    a: int
    b: int
    score: float


def match_picks(measured: Measured, picks: Sequence[Pick]) -> tuple[list[Comparison], list[str]]:
    """Each pick's two mixes as grid mixes of the same method: the same mix, or the nearest one
    within half the grid's spacing (said in a note).

    Returns the comparisons and notes for people. A pick is left out, with a note naming it
    (1-based), when a mix names an adapter the grid lacks (with a weight other than 0), is of a
    method the grid does not hold, lies far from every grid mix, is not fully measured yet, or
    when both mixes are the same grid mix. Adapters a pick leaves out weigh 0.
    """
    comparisons, notes = [], []
    valid = measured.valid
    methods = np.array(measured.mixing)
    reach = {m: _reach(measured.weights[methods == m]) for m in set(measured.mixing)}
    for number, pick in enumerate(picks, start=1):
        rows, why = [], ""
        for side, mix, method in (("a", pick.a, pick.a_method), ("b", pick.b, pick.b_method)):
            unknown = sorted(n for n, w in mix.items() if n not in measured.adapters and w != 0)
            if unknown:
                why = f"mix {side} names {unknown}, not among this frontier's adapters ({', '.join(measured.adapters)})"
                break
            if method not in reach:
                why = f"mix {side} is a {method} mix and this frontier has none"
                break
            w = np.array([float(mix.get(a, 0.0)) for a in measured.adapters])
            distance = np.where(methods == method, np.linalg.norm(measured.weights - w, axis=1), np.inf)
            row = int(np.argmin(distance))
            grid = _label(dict(zip(measured.adapters, measured.weights[row], strict=True)))
            if distance[row] > reach[method]:
                why = f"mix {side} ({_label(mix)}) is far from every grid mix (nearest: {grid})"
                break
            if not valid[row]:
                why = f"grid mix {row} ({grid}) is not measured yet"
                break
            if distance[row] > MATCH_TOLERANCE:
                notes.append(
                    f"pick {number}: mix {side} ({_label(mix)}) is not on the grid: matched to the "
                    f"nearest grid mix {row} ({grid}, distance {distance[row]:.3g})"
                )
            rows.append(row)
        if not why and rows[0] == rows[1]:
            why = f"both mixes are grid mix {rows[0]}"
        if why:
            notes.append(f"pick {number} left out: {why}")
            continue
        comparisons.append(Comparison(rows[0], rows[1], pick.score))
    return comparisons, notes


def _reach(weights: np.ndarray) -> float:
    """How far (L2) a pick's mix may lie from a grid mix to stand for it: half the median distance
    between neighbouring grid mixes (any distance for a grid of one mix)."""
    if len(weights) < 2:
        return np.inf
    d = np.linalg.norm(weights[:, None, :] - weights[None, :, :], axis=2)
    d[d <= MATCH_TOLERANCE] = np.inf
    nearest = d.min(axis=1)
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) / 2 if len(nearest) else np.inf


def _label(mix: Mapping[str, float]) -> str:
    return ", ".join(f"{n}={float(w):.3g}" for n, w in mix.items())


# ------------------------------------------------------------------------------------------------
# the posterior


@dataclass(frozen=True)
class Posterior:
    """Weighted samples of (lambda, beta) given the picks, under one utility.

    ``lam`` (S, K) trade-offs on the simplex, ``beta`` (S,) consistency, ``w`` (S,) normalised
    weights, ``log_evidence`` log p(picks | utility) (0 with no picks).
    """

    utility: str
    objectives: tuple[str, ...]
    lam: np.ndarray
    beta: np.ndarray
    w: np.ndarray
    log_evidence: float
    picks: int

    @property
    def mean(self) -> np.ndarray:
        """(K,) lambda's posterior mean."""
        return self.w @ self.lam

    def interval(self, level: float = 0.95) -> np.ndarray:
        """(K, 2) lambda's equal-tailed posterior interval per objective."""
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        return np.array(
            [_weighted_quantiles(self.lam[:, k], self.w, (lo, hi)) for k in range(self.lam.shape[1])]
        )

    @property
    def ess(self) -> float:
        """The samples' effective size (Kish): how many equally weighted samples they are worth."""
        return float(1.0 / np.sum(self.w**2))


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    order = np.argsort(x)
    cum = np.cumsum(w[order])
    cum /= cum[-1]
    return np.array([x[order][min(int(np.searchsorted(cum, q)), len(x) - 1)] for q in qs])


def _log_likelihood(
    g: np.ndarray, comparisons: Sequence[Comparison], lam: np.ndarray, beta: np.ndarray, utility: str
) -> np.ndarray:
    """(S,) log p(picks | lambda_s, beta_s); ties count half a win for each side."""
    if not comparisons:
        return np.zeros(len(lam))
    rows = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    where = {r: i for i, r in enumerate(rows)}
    u = utilities(g[rows], lam, utility)  # (S, R)
    a = np.array([where[c.a] for c in comparisons])
    b = np.array([where[c.b] for c in comparisons])
    score = np.array([c.score for c in comparisons])
    d = beta[:, None] * (u[:, a] - u[:, b])  # (S, P)
    # score * log sigmoid(d) + (1 - score) * log sigmoid(-d), with log sigmoid(-d) = log sigmoid(d) - d
    return (-np.logaddexp(0.0, -d) - (1.0 - score) * d).sum(axis=1)


def fit(
    data,
    comparisons: Sequence[Comparison],
    *,
    utility: str = "linear",
    samples: int = SAMPLES,
    seed: int = 0,
) -> Posterior:
    """The posterior of the trade-off given ``comparisons`` (rows of ``data``'s mixes), one utility.

    ``data``: ``Normalised`` or what ``normalise`` takes. Deterministic for a given ``seed``.
    """
    check_utility(utility, auto=False)
    norm = data if isinstance(data, Normalised) else normalise(data)
    g, k = norm.g, norm.g.shape[1]
    for c in comparisons:
        for row in (c.a, c.b):
            if not np.isfinite(g[row]).all():
                raise SoupError(f"mix {row} is not fully measured: a pick can only compare measured mixes")
    rng = np.random.default_rng(seed)
    prior = np.ones(k)

    def draw(proposal_alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lam = rng.dirichlet(prior, size=samples)
        log_q = np.full(samples, _dirichlet_logpdf(lam[:1], prior)[0])  # the prior's density is flat
        if proposal_alpha is not None:  # half from the adapted Dirichlet: a defensive mixture
            half = samples // 2
            lam[half:] = rng.dirichlet(proposal_alpha, size=samples - half)
            lam = np.clip(lam, 1e-12, None)
            lam /= lam.sum(axis=1, keepdims=True)
            log_p = _dirichlet_logpdf(lam, prior)
            log_q = np.logaddexp(log_p, _dirichlet_logpdf(lam, proposal_alpha)) - math.log(2)
        beta = np.exp(rng.uniform(math.log(BETA_LOW), math.log(BETA_HIGH), size=samples))
        log_w = (
            _log_likelihood(g, comparisons, lam, beta, utility) + _dirichlet_logpdf(lam[:1], prior)[0] - log_q
        )
        return lam, beta, log_w

    lam, beta, log_w = draw(None)
    if comparisons:
        w = np.exp(log_w - logsumexp(log_w))
        lam, beta, log_w = draw(_matched_dirichlet(lam, w))
    log_evidence = float(logsumexp(log_w) - math.log(samples))
    w = np.exp(log_w - logsumexp(log_w))
    return Posterior(utility, norm.measured.objectives, lam, beta, w, log_evidence, len(comparisons))


def _dirichlet_logpdf(lam: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(S,) log density of the Dirichlet(``alpha``) at the rows of ``lam`` (S, K)."""
    x = np.clip(lam, 1e-300, None)
    return np.atleast_1d(
        np.asarray(stats.dirichlet.logpdf((x / x.sum(axis=1, keepdims=True)).T, alpha), dtype=np.float64)
    )


def _matched_dirichlet(lam: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A Dirichlet with the weighted samples' mean and (a widened) variance: the adapted proposal."""
    mean = w @ lam
    var = w @ (lam - mean) ** 2
    # Dirichlet: var_k = m_k (1 - m_k) / (a0 + 1); widen twofold so the proposal covers the tails.
    ratio = mean * (1 - mean) / np.maximum(2.0 * var, 1e-12)
    a0 = float(np.clip(np.median(ratio) - 1.0, 1.0, 1e4))
    return np.clip(mean * a0, 0.05, None)


# ------------------------------------------------------------------------------------------------
# decisions


def decide(norm: Normalised, post: Posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates' utilities under every posterior sample, computed once: ``U`` (S, C) over
    ``norm.rows``; each mix's expected utility and probability of being the best, (M,) with NaN
    for mixes that are not candidates."""
    u = utilities(norm.g[norm.rows], post.lam, post.utility)  # (S, C)
    eu, p_best = np.full(len(norm.g), np.nan), np.full(len(norm.g), np.nan)
    eu[norm.rows] = post.w @ u
    p_best[norm.rows] = np.bincount(np.argmax(u, axis=1), weights=post.w, minlength=len(norm.rows))
    return u, eu, p_best


def expected_utility(norm: Normalised, post: Posterior) -> np.ndarray:
    """(M,) each candidate mix's posterior expected utility; NaN for the others."""
    return decide(norm, post)[1]


def probability_best(norm: Normalised, post: Posterior) -> np.ndarray:
    """(M,) each candidate's posterior probability of having the highest utility; NaN for others."""
    return decide(norm, post)[2]


def information_gain(norm: Normalised, post: Posterior, a: int, b: int) -> float:
    """Expected information (nats) about (lambda, beta) from a pick between mixes ``a`` and ``b``
    (BALD: entropy of the predicted pick minus the expected entropy given the parameters)."""
    u = utilities(norm.g[[a, b]], post.lam, post.utility)
    p = expit(post.beta * (u[:, 0] - u[:, 1]))
    return float(_entropy(post.w @ p) - post.w @ _entropy(p))


def _entropy(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def next_pair(
    norm: Normalised,
    post: Posterior,
    *,
    candidates: int = CANDIDATES,
    decided: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[int, int, float] | None:
    """The two mixes whose comparison is expected to teach most: the largest information gain
    among pairs of the leading Pareto-optimal candidates (by probability of being the best, then
    by expected utility). Returns (a, b, expected information in nats), or None when fewer than
    two mixes are candidates. ``decided``: ``decide(norm, post)``, when already computed."""
    u_all, eu, p_best = decided if decided is not None else decide(norm, post)
    front = norm.rows[norm.front] if norm.front.sum() >= 2 else norm.rows
    if len(front) < 2:
        return None
    lead = front[np.lexsort((-eu[front], -p_best[front]))][:candidates]
    column = {int(r): i for i, r in enumerate(norm.rows)}
    u = u_all[:, [column[int(r)] for r in lead]]  # (S, L)
    best = (-1.0, 0, 1)
    for i in range(len(lead)):
        p = expit(post.beta[:, None] * (u[:, [i]] - u[:, i + 1 :]))  # (S, L - i - 1)
        gain = _entropy(post.w @ p) - post.w @ _entropy(p)
        if len(gain) and gain.max() > best[0]:
            j = int(np.argmax(gain))
            best = (float(gain[j]), i, i + 1 + j)
    return int(lead[best[1]]), int(lead[best[2]]), best[0]


# ------------------------------------------------------------------------------------------------
# the whole step: picks -> a learned choice


@dataclass(frozen=True)
class Learned:
    """What the picks teach: the posterior summary, the recommended mix and the pair to compare next."""

    choice: Choice | None  # None: no picks yet
    utility: str
    evidence: dict[str, float]  # utility -> log evidence (both when utility was "auto")
    lam: dict[str, float]  # objective -> posterior mean
    lam_ci: dict[str, tuple[float, float]]  # objective -> 95% interval
    p_best: float  # the recommendation's probability of being the best mix (NaN without picks)
    next_pair: tuple[dict[str, float], dict[str, float]] | None  # None: fewer than two candidates
    next_rows: tuple[int, int] | None
    next_gain: float  # nats
    picks: int  # the picks learned from
    given: int  # the picks given (those left out are in the notes)
    notes: tuple[str, ...]  # picks matched to a nearby grid mix, or left out

    def to_dict(self) -> dict:
        """The choice file: the other rules' keys plus ``lambda``, ``lambda_ci`` and ``next_pair``."""
        out = self.choice.to_dict() if self.choice is not None else {}
        return out | {
            "utility": self.utility,
            "picks": self.picks,
            "p_best": None if math.isnan(self.p_best) else self.p_best,
            "lambda": dict(self.lam),
            "lambda_ci": {k: [lo, hi] for k, (lo, hi) in self.lam_ci.items()},
            "next_pair": [dict(m) for m in self.next_pair] if self.next_pair is not None else None,
        }

    @property
    def utility_text(self) -> str:
        if len(self.evidence) < 2:
            return f"{self.utility} utility"
        other = next(u for u in self.evidence if u != self.utility)
        if self.picks == 0:
            return f"{self.utility} utility (no picks yet to prefer either)"
        gap = (self.evidence[self.utility] - self.evidence[other]) / math.log(10)
        factor = f"{10**gap:.2g}x" if gap < 6 else f"more than 10^{int(gap)} times"
        return f"{self.utility} utility (the picks support it {factor} more than {other})"


def _mix(m: Measured, row: int) -> dict[str, float]:
    return dict(zip(m.adapters, map(float, m.weights[row]), strict=True))


def learn(
    data,
    picks: Sequence[Pick],
    *,
    utility: str = "auto",
    where: Sequence[str] = (),
    bound: str = "mean",
    samples: int = SAMPLES,
    seed: int = 0,
) -> Learned:
    """Fit the trade-off to ``picks`` over the mixes of ``data`` and recommend a mix.

    ``utility``: ``linear``, ``chebyshev`` or ``auto`` (the one with the larger evidence; linear
    when equal). With no picks there is no recommendation (``choice`` None) but a first pair.
    """
    check_utility(utility)
    norm = normalise(data, where, bound=bound)
    comparisons, notes = match_picks(norm.measured, picks)
    names = UTILITIES if utility == "auto" else (utility,)
    posts = {u: fit(norm, comparisons, utility=u, samples=samples, seed=seed) for u in names}
    chosen = max(names, key=lambda u: (posts[u].log_evidence, u == "linear"))
    post = posts[chosen]
    m = norm.measured
    decided = decide(norm, post)
    pair = next_pair(norm, post, decided=decided)
    lam_ci = post.interval()
    learned = Learned(
        choice=None,
        utility=chosen,
        evidence={u: p.log_evidence for u, p in posts.items()},
        lam={o: float(x) for o, x in zip(m.objectives, post.mean, strict=True)},
        lam_ci={o: (float(lo), float(hi)) for o, (lo, hi) in zip(m.objectives, lam_ci, strict=True)},
        p_best=math.nan,
        next_pair=None if pair is None else (_mix(m, pair[0]), _mix(m, pair[1])),
        next_rows=None if pair is None else (pair[0], pair[1]),
        next_gain=math.nan if pair is None else pair[2],
        picks=len(comparisons),
        given=len(picks),
        notes=tuple(notes),
    )
    if not comparisons:
        return learned
    _, eu, p_best = decided
    best = int(np.nanargmax(eu))
    trade = ", ".join(f"{o}={x:.2f}" for o, x in learned.lam.items())
    rule = (
        f"highest expected utility under the trade-off learned from {len(comparisons)} pick(s): "
        f"{chosen} utility, lambda {trade} (objectives normalised by the front's ideal and nadir); "
        f"P(best)={p_best[best]:.2f}"
    )
    choice = m.choice(best, method="picks", rule=rule)
    return dataclasses.replace(learned, choice=choice, p_best=float(p_best[best]))


__all__ = [
    "UTILITIES",
    "UTILITY_CHOICES",
    "Comparison",
    "decide",
    "Learned",
    "Normalised",
    "Posterior",
    "expected_utility",
    "fit",
    "information_gain",
    "learn",
    "match_picks",
    "next_pair",
    "normalise",
    "probability_best",
    "utilities",
]
