"""The results of a grid run: the ``xarray.Dataset`` layout, its per-mix summaries, and typed accessors.

Dimensions (mix, adapter, prompt, sample, objective):

    weights   (mix, adapter)                   the mixing weights
    text      (mix, prompt, sample)            the responses
    n_tokens  (mix, prompt, sample)            generated tokens (EOS excluded)
    finished  (mix, prompt, sample)            stopped at EOS (else cut at max_new_tokens)
    done      (mix, prompt, sample)            generated and scored (False only in partial results)
    score     (mix, prompt, sample, objective) the objectives' scores (NaN where a scorer failed)

    coordinates: prompt_text (prompt), direction (objective), method (mix: soup or mod; files
                 written before methods existed have none and are all soup)
    attributes:  sampling (JSON), samples, soup (JSON fingerprint), cache_key, complete

``summarize`` adds mean, ci_low, ci_high (mix, objective), pareto (mix) and the hypervolume
attributes. Everything outside this module reads a dataset through the accessors below, never
by its variable names.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from explorer.atomic import atomic_write
from explorer.decoding import SamplingConfig
from explorer.errors import SoupError
from explorer.frontier.grid import GridSpec
from explorer.frontier.pareto import default_reference, hypervolume, paired_bootstrap, pareto_mask

ROWS = ("mix", "prompt", "sample")


def empty_results(spec: GridSpec, *, adapters: Sequence[str], fingerprint: Mapping) -> xr.Dataset:
    """A results dataset with nothing done yet: empty texts, NaN scores."""
    m, p, s = spec.shape
    k = len(spec.objectives)
    return xr.Dataset(
        {
            "weights": (("mix", "adapter"), np.asarray(spec.mixes, dtype=np.float64)),
            "text": (ROWS, np.full((m, p, s), "", dtype=object)),
            "n_tokens": (ROWS, np.zeros((m, p, s), dtype=np.int32)),
            "finished": (ROWS, np.zeros((m, p, s), dtype=bool)),
            "done": (ROWS, np.zeros((m, p, s), dtype=bool)),
            "score": ((*ROWS, "objective"), np.full((m, p, s, k), np.nan)),
        },
        coords={
            "mix": np.arange(m),
            "adapter": list(adapters),
            "prompt": np.arange(p),
            "prompt_text": ("prompt", np.array(spec.prompts, dtype=object)),
            "sample": np.arange(s),
            "objective": [o.name for o in spec.objectives],
            "direction": ("objective", [str(o.direction) for o in spec.objectives]),
            "method": ("mix", np.array(spec.mix_methods, dtype=object)),
        },
        attrs={
            "sampling": json.dumps(asdict(spec.sampling)),
            "samples": int(spec.samples),
            "soup": json.dumps(fingerprint),
        },
    )


def fill_rows(
    ds: xr.Dataset,
    rows: Sequence[tuple[int, int, int]],
    texts: Sequence[str],
    n_tokens: Sequence[int],
    finished: Sequence[bool],
    scores: np.ndarray,
) -> None:
    """Write generated rows ``(mix, prompt, sample)`` and their scores (rows, K) into ``ds``, in place."""
    for j, (mi, p, si) in enumerate(rows):
        ds["text"].values[mi, p, si] = texts[j]
        ds["n_tokens"].values[mi, p, si] = n_tokens[j]
        ds["finished"].values[mi, p, si] = finished[j]
        ds["done"].values[mi, p, si] = True
        ds["score"].values[mi, p, si, :] = scores[j]


def save_results(ds: xr.Dataset, path: Path | str) -> Path:
    """Save results as netCDF (atomically)."""
    out = Path(path).expanduser()
    try:
        with atomic_write(out) as tmp:
            ds.to_netcdf(tmp)
    except (OSError, RuntimeError) as err:  # netCDF says "HDF error" for a full disk
        free = shutil.disk_usage(out.parent).free if out.parent.is_dir() else 0
        raise SoupError(
            f"cannot write the results to {out} ({' '.join(str(err).split())}; {free / 1e6:.0f} MB free "
            f"there): {out} was left as it was; free some space or choose another --out"
        ) from None
    return out


def load_results(path: Path | str) -> xr.Dataset:
    """Load results saved by ``save_results`` or ``explorer grid``; anything else is one line
    naming the file (a pipe is never opened: reading it would wait forever)."""
    file = Path(path).expanduser()
    if not file.exists():
        raise SoupError(f"results file {file} does not exist")
    if not file.is_file():
        raise SoupError(f"results file {file} is not a regular file: give the .nc that explorer grid wrote")
    try:
        return xr.load_dataset(file)
    except Exception as err:  # netCDF/HDF5 raise several types for a damaged or foreign file
        reason = " ".join(str(err).split()[:30])
        raise SoupError(f"{file} is not a results file written by explorer grid ({reason})") from None


# ------------------------------------------------------------------------------------------------
# per-mix summaries


def mix_means(score: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Per-prompt means of the done rows: score (M, P, S, K), done (M, P, S) -> (M, P, K).

    A mix's score is the mean over prompts of these (NaN-skipping), as ``summarize`` computes it.
    """
    masked = np.where(done[..., None], score, np.nan)
    with _quiet():
        return np.nanmean(masked, axis=2)


def summarize(ds: xr.Dataset, *, n_boot: int = 500, level: float = 0.95, seed: int = 0, reference=None):
    """Add per-mix summaries to a results dataset and return it (a new object).

    Adds ``mean``, ``ci_low``, ``ci_high`` (mix, objective): the mean over prompts of each
    prompt's mean over samples, with a percentile bootstrap interval over prompts (the same
    resampled prompts for every mix); ``pareto`` (mix): Pareto-optimal by the means and the
    objectives' directions; and the attributes ``hypervolume``, ``hypervolume_ci`` and
    ``reference`` (the reference point, in the objectives' units, default ``default_reference``
    of the means). Rows not yet done are ignored, so partial results summarize too.
    """
    dirs = directions(ds)
    per_prompt = mix_means(_rows(ds, "score"), _rows(ds, "done"))  # (M, P, K)
    with _quiet():
        mean = np.nanmean(per_prompt, axis=1)  # (M, K)
    low, high, boot = paired_bootstrap(per_prompt, axis=1, n_boot=n_boot, level=level, seed=seed)
    out = ds.copy()
    dims = ("mix", "objective")
    out["mean"], out["ci_low"], out["ci_high"] = (dims, mean), (dims, low), (dims, high)
    out["pareto"] = ("mix", pareto_mask(mean, dirs) if len(mean) else np.zeros(0, bool))
    valid = ~np.isnan(mean).any(axis=1)
    if valid.any():
        ref = np.asarray(reference if reference is not None else default_reference(mean[valid], dirs))
        hv_boot = [hypervolume(boot[:, :, b], dirs, ref) for b in range(min(n_boot, 200))]
        alpha = (1 - level) / 2
        out.attrs["hypervolume"] = hypervolume(mean, dirs, ref)
        out.attrs["hypervolume_ci"] = [
            float(np.quantile(hv_boot, alpha)),
            float(np.quantile(hv_boot, 1 - alpha)),
        ]
        out.attrs["reference"] = [float(r) for r in ref]
        methods = np.asarray(methods_of(ds))
        if len(set(methods.tolist())) > 1:  # each method's own front, against the same reference
            by_method = {}
            for m in dict.fromkeys(methods.tolist()):
                rows = methods == m
                if not valid[rows].any():  # nothing of this method measured yet (a partial grid)
                    by_method[m] = [float("nan")] * 3
                    continue
                hv = [hypervolume(boot[rows][:, :, b], dirs, ref) for b in range(min(n_boot, 200))]
                by_method[m] = [
                    hypervolume(mean[rows], dirs, ref),
                    float(np.quantile(hv, alpha)),
                    float(np.quantile(hv, 1 - alpha)),
                ]
            out.attrs["hypervolume_by_method"] = json.dumps(by_method)
    out.attrs["ci_level"] = level
    return out


SUMMARY = ("mean", "ci_low", "ci_high", "pareto")  # what ``summarize`` adds per mix
_RUN_ATTRS = ("cache_key", "complete", "hypervolume", "hypervolume_ci", "reference", "hypervolume_by_method")


def concat_results(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """One results dataset of several runs' mixes, one run after another (an adaptive grid's rounds),
    summarized together: the intervals resample the same prompts for every mix, and the
    hypervolume's reference point is the union's. The runs must share prompts, samples, decoding,
    objectives and adapters. ``complete`` when every run is."""
    if not parts:
        raise SoupError("no results to join")
    first = parts[0]
    for i, ds in enumerate(parts[1:], start=1):
        same = {
            "adapters": adapter_names(ds) == adapter_names(first),
            "objectives": objective_names(ds) == objective_names(first)
            and directions(ds) == directions(first),
            "prompts": prompt_texts(ds) == prompt_texts(first),
            "samples": samples_of(ds) == samples_of(first),
            "decoding": sampling_of(ds) == sampling_of(first),
        }
        differ = [k for k, ok in same.items() if not ok]
        if differ:
            raise SoupError(
                f"results {i} differ from results 0 in their {', '.join(differ)}: cannot join them"
            )
    raw = [with_methods(ds).drop_vars([v for v in SUMMARY if v in ds]) for ds in parts]
    out = xr.concat(raw, dim="mix", data_vars="all", coords="minimal", combine_attrs="override")
    out = out.assign_coords(mix=np.arange(out.sizes["mix"]))
    out.attrs = {k: v for k, v in first.attrs.items() if k not in _RUN_ATTRS}
    out.attrs["complete"] = int(all(is_complete(ds) for ds in parts))
    return summarize(out)


def estimate(ds: xr.Dataset, weights: Sequence[float], *, power: float = 2.0) -> np.ndarray:
    """A quick estimate of a mix's mean scores (K,) from the grid's means, without generating.

    ``weights`` (N,) in the dataset's adapter order. Two adapters: linear interpolation along
    the second weight (clamped at the ends); more: inverse-distance weighting of the measured
    mixes (exact on a grid point). Mixes not measured yet are skipped; NaN when none is.
    """
    w = np.asarray(weights, dtype=np.float64)
    grid, mean = mix_weights(ds), means(ds)  # (M, N), (M, K)
    ok = ~np.isnan(mean).any(axis=1)
    grid, mean = grid[ok], mean[ok]
    if len(grid) == 0:
        return np.full(mean.shape[1], np.nan)
    if grid.shape[1] == 2 and np.allclose(grid.sum(axis=1), 1.0) and len(grid) > 1:
        order = np.argsort(grid[:, 1])
        return np.array([np.interp(w[1], grid[order, 1], mean[order, k]) for k in range(mean.shape[1])])
    dist = np.linalg.norm(grid - w, axis=1)
    if dist.min() < 1e-12:
        return mean[dist.argmin()]
    inv = 1.0 / dist**power
    return (inv[:, None] * mean).sum(axis=0) / inv.sum()


def find_mix(ds: xr.Dataset, weights: Mapping[str, float], method: str = "soup") -> int | None:
    """The index of the grid mix equal to ``weights`` (name -> weight) under ``method``, or None."""
    names = adapter_names(ds)
    if sorted(names) != sorted(weights):
        raise SoupError(f"the frontier mixes {names}, not the adapters {sorted(weights)}")
    target = np.array([float(weights[n]) for n in names])
    same = np.abs(mix_weights(ds) - target).max(axis=1) < 1e-9
    hits = np.flatnonzero(same & (np.asarray(methods_of(ds)) == method))
    return int(hits[0]) if len(hits) else None


def mix_scores(ds: xr.Dataset, weights: Mapping[str, float], method: str = "soup") -> dict | None:
    """The measured scores of the mix ``weights`` (name -> weight) under ``method`` when the grid
    holds exactly it: ``{objective: {mean, ci_low, ci_high, direction}}``, else None."""
    m = find_mix(ds, weights, method)
    if m is None or not is_summarized(ds):
        return None
    mean, (low, high) = means(ds), intervals(ds)
    return {
        o: {
            "mean": float(mean[m, k]),
            "ci_low": float(low[m, k]),
            "ci_high": float(high[m, k]),
            "direction": d,
        }
        for k, (o, d) in enumerate(zip(objective_names(ds), directions(ds), strict=True))
    }


def front_in_plane(ds: xr.Dataset, x: str, y: str) -> list[int]:
    """The mixes no other mix beats on both objectives ``x`` and ``y``, in order of ``x``.

    With more than two objectives a mix can be Pareto-optimal overall and still be left out
    here: another mix beats it on these two objectives but not on a third.
    """
    k = objective_names(ds)
    mean = means(ds)[:, [k.index(x), k.index(y)]]  # (M, 2)
    keep = np.flatnonzero(pareto_mask(mean, [direction_of(ds, x), direction_of(ds, y)]))
    return [int(m) for m in keep[np.argsort(mean[keep, 0], kind="stable")]]


# ------------------------------------------------------------------------------------------------
# typed accessors: the only readers of the layout


def adapter_names(ds: xr.Dataset) -> list[str]:
    return [str(a) for a in ds["adapter"].values]


def objective_names(ds: xr.Dataset) -> list[str]:
    return [str(o) for o in ds["objective"].values]


def directions(ds: xr.Dataset) -> list[str]:
    """Each objective's direction, ``"maximize"`` or ``"minimize"``."""
    return [str(d) for d in ds["direction"].values]


def direction_of(ds: xr.Dataset, objective: str) -> str:
    return directions(ds)[objective_names(ds).index(objective)]


def mix_weights(ds: xr.Dataset) -> np.ndarray:
    """(M, N) mixing weights, columns in ``adapter_names`` order."""
    return np.asarray(ds["weights"].transpose("mix", "adapter").values, dtype=np.float64)


def with_methods(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its ``method`` coordinate (files written before methods existed: all soup)."""
    if "method" in ds.coords:
        return ds
    return ds.assign_coords(method=("mix", np.array(methods_of(ds), dtype=object)))


def total_tokens(ds: xr.Dataset) -> int:
    """Tokens generated over every row done."""
    return int(np.where(_rows(ds, "done"), _rows(ds, "n_tokens"), 0).sum())


def methods_of(ds: xr.Dataset) -> list[str]:
    """Each mix's method, (M,): ``soup`` for files written before methods existed."""
    if "method" in ds.coords:
        return [str(m) for m in ds["method"].values]
    return ["soup"] * n_mixes(ds)


def mix_dict(ds: xr.Dataset, index: int) -> dict[str, float]:
    """Grid mix ``index`` as ``{adapter: weight}``."""
    return {n: float(w) for n, w in zip(adapter_names(ds), mix_weights(ds)[index], strict=True)}


def n_mixes(ds: xr.Dataset) -> int:
    return int(ds.sizes["mix"])


def prompt_texts(ds: xr.Dataset) -> list[str]:
    return [str(t) for t in ds["prompt_text"].values]


def sampling_of(ds: xr.Dataset) -> SamplingConfig:
    """The decoding the grid was generated with."""
    return SamplingConfig(**json.loads(ds.attrs["sampling"]))


def samples_of(ds: xr.Dataset) -> int:
    return int(ds.attrs.get("samples", ds.sizes["sample"]))


def done_mask(ds: xr.Dataset) -> np.ndarray:
    """(M, P, S) bool: which rows are generated and scored."""
    return _rows(ds, "done").astype(bool)


def row_texts(ds: xr.Dataset) -> np.ndarray:
    """(M, P, S) responses."""
    return _rows(ds, "text")


def row_scores(ds: xr.Dataset) -> np.ndarray:
    """(M, P, S, K) per-row scores."""
    return _rows(ds, "score")


def is_complete(ds: xr.Dataset) -> bool:
    """Every row done (a run that was not cancelled)."""
    return bool(ds.attrs.get("complete", int(done_mask(ds).all())))


def is_summarized(ds: xr.Dataset) -> bool:
    return "mean" in ds


def means(ds: xr.Dataset) -> np.ndarray:
    """(M, K) per-mix mean scores."""
    return np.asarray(ds["mean"].transpose("mix", "objective").values, dtype=np.float64)


def intervals(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) lower and upper ends of the per-mix bootstrap intervals."""
    return (
        np.asarray(ds["ci_low"].transpose("mix", "objective").values, dtype=np.float64),
        np.asarray(ds["ci_high"].transpose("mix", "objective").values, dtype=np.float64),
    )


def pareto(ds: xr.Dataset) -> np.ndarray:
    """(M,) bool: Pareto-optimal mixes by their means."""
    return np.asarray(ds["pareto"].values, dtype=bool)


def hypervolume_of(ds: xr.Dataset) -> float:
    return float(ds.attrs.get("hypervolume", float("nan")))


def hypervolume_by_method(ds: xr.Dataset) -> dict[str, tuple[float, float, float]]:
    """Each method's hypervolume with its interval, (hv, low, high), against the grid's reference
    point; empty for a grid of one method."""
    raw = ds.attrs.get("hypervolume_by_method")
    return {m: (v[0], v[1], v[2]) for m, v in json.loads(raw).items()} if raw else {}


def reference_of(ds: xr.Dataset) -> list[float] | None:
    ref = ds.attrs.get("reference")
    return None if ref is None else [float(r) for r in np.atleast_1d(ref)]


def _rows(ds: xr.Dataset, name: str) -> np.ndarray:
    dims = (*ROWS, "objective") if name == "score" else ROWS
    return ds[name].transpose(*dims).values


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's RuntimeWarnings for all-NaN slices (partial results: NaN means, by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
