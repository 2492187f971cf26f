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
    return -((lam[:, None, :] * u[None, :, :]).max(axis=2) + RHO * u.sum(axis=1)[None, :])


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
    """Each pick's two mixes as the nearest fully measured grid mixes of the same method.

    Returns the comparisons and notes for people (a mix not on the grid: which grid mix stands
    for it). Raises a ``SoupError`` naming the pick (1-based) for a mix with an adapter the grid
    lacks or a method it does not hold. Adapters a pick leaves out weigh 0.
    """
    comparisons, notes = [], []
    valid = measured.valid
    for number, pick in enumerate(picks, start=1):
        rows = []
        for side, mix, method in (("a", pick.a, pick.a_method), ("b", pick.b, pick.b_method)):
            unknown = sorted(set(mix) - set(measured.adapters))
            if unknown:
                raise SoupError(
                    f"pick {number}: mix {side} names {unknown}, but the frontier's adapters are "
                    f"{', '.join(measured.adapters)}: were the picks made on another frontier?"
                )
            same = valid & np.array([m == method for m in measured.mixing])
            if not same.any():
                raise SoupError(
                    f"pick {number}: mix {side} is a {method} mix, but the frontier has no measured "
                    f"{method} mix: compute the grid with --method {method}"
                )
            w = np.array([float(mix.get(a, 0.0)) for a in measured.adapters])
            distance = np.where(same, np.linalg.norm(measured.weights - w, axis=1), np.inf)
            row = int(np.argmin(distance))
            if distance[row] > MATCH_TOLERANCE:
                notes.append(
                    f"pick {number}: mix {side} ({_label(mix)}) is not on the grid: matched to the "
                    f"nearest grid mix {row} ({_label(dict(zip(measured.adapters, measured.weights[row], strict=True)))}, "
                    f"distance {distance[row]:.3g})"
                )
            rows.append(row)
        comparisons.append(Comparison(rows[0], rows[1], pick.score))
    return comparisons, notes


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


def expected_utility(norm: Normalised, post: Posterior) -> np.ndarray:
    """(M,) each candidate mix's posterior expected utility; NaN for the others."""
    out = np.full(len(norm.g), np.nan)
    out[norm.rows] = post.w @ utilities(norm.g[norm.rows], post.lam, post.utility)
    return out


def probability_best(norm: Normalised, post: Posterior) -> np.ndarray:
    """(M,) each candidate's posterior probability of having the highest utility; NaN for others."""
    u = utilities(norm.g[norm.rows], post.lam, post.utility)  # (S, C)
    best = np.argmax(u, axis=1)
    p = np.bincount(best, weights=post.w, minlength=len(norm.rows))
    out = np.full(len(norm.g), np.nan)
    out[norm.rows] = p
    return out


def information_gain(norm: Normalised, post: Posterior, a: int, b: int) -> float:
    """Expected information (nats) about (lambda, beta) from a pick between mixes ``a`` and ``b``
    (BALD: entropy of the predicted pick minus the expected entropy given the parameters)."""
    u = utilities(norm.g[[a, b]], post.lam, post.utility)
    p = expit(post.beta * (u[:, 0] - u[:, 1]))
    return float(_entropy(post.w @ p) - post.w @ _entropy(p))


def _entropy(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def next_pair(norm: Normalised, post: Posterior, *, candidates: int = CANDIDATES) -> tuple[int, int, float]:
    """The two mixes whose comparison is expected to teach most: the largest information gain
    among pairs of the leading Pareto-optimal candidates (by probability of being the best, then
    by expected utility). Returns (a, b, expected information in nats)."""
    front = norm.rows[norm.front] if norm.front.sum() >= 2 else norm.rows
    if len(front) < 2:
        raise SoupError("only one mix to choose from: there is no pair to compare")
    p_best, eu = probability_best(norm, post)[front], expected_utility(norm, post)[front]
    lead = list(front[np.lexsort((-eu, -p_best))][:candidates])
    by_utility = [r for r in front[np.argsort(-eu)] if r not in lead]
    lead += by_utility[: max(0, candidates - len(lead))]
    u = utilities(norm.g[lead], post.lam, post.utility)  # (S, L)
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
    next_pair: tuple[dict[str, float], dict[str, float]]
    next_rows: tuple[int, int]
    next_gain: float  # nats
    picks: int
    notes: tuple[str, ...]  # picks matched to a nearby grid mix

    def to_dict(self) -> dict:
        """The choice file: the other rules' keys plus ``lambda``, ``lambda_ci`` and ``next_pair``."""
        out = self.choice.to_dict() if self.choice is not None else {}
        return out | {
            "utility": self.utility,
            "picks": self.picks,
            "p_best": None if math.isnan(self.p_best) else self.p_best,
            "lambda": dict(self.lam),
            "lambda_ci": {k: [lo, hi] for k, (lo, hi) in self.lam_ci.items()},
            "next_pair": [dict(self.next_pair[0]), dict(self.next_pair[1])],
        }

    @property
    def utility_text(self) -> str:
        if len(self.evidence) < 2:
            return f"{self.utility} utility"
        other = next(u for u in self.evidence if u != self.utility)
        factor = math.exp(self.evidence[self.utility] - self.evidence[other])
        if self.picks == 0:
            return f"{self.utility} utility (no picks yet to prefer either)"
        return f"{self.utility} utility (the picks support it {factor:.2g}x more than {other})"


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
    a, b, gain = next_pair(norm, post)
    mix = {r: dict(zip(m.adapters, map(float, m.weights[r]), strict=True)) for r in (a, b)}
    lam_ci = post.interval()
    learned = Learned(
        choice=None,
        utility=chosen,
        evidence={u: p.log_evidence for u, p in posts.items()},
        lam={o: float(x) for o, x in zip(m.objectives, post.mean, strict=True)},
        lam_ci={o: (float(lo), float(hi)) for o, (lo, hi) in zip(m.objectives, lam_ci, strict=True)},
        p_best=math.nan,
        next_pair=(mix[a], mix[b]),
        next_rows=(a, b),
        next_gain=gain,
        picks=len(comparisons),
        notes=tuple(notes),
    )
    if not comparisons:
        return learned
    eu, p_best = expected_utility(norm, post), probability_best(norm, post)
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
