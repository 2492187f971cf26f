"""Evaluate a grid of mixes: every (mix, prompt, sample) is a row of batched generation through
the gated soup, in chunks; each chunk is scored by every objective as soon as it is generated.

Results are an ``xarray.Dataset`` with dimensions (mix, prompt, sample, objective):

    weights   (mix, adapter)                   the mixing weights
    text      (mix, prompt, sample)            the responses
    n_tokens  (mix, prompt, sample)            generated tokens (EOS excluded)
    finished  (mix, prompt, sample)            stopped at EOS (else cut at max_new_tokens)
    done      (mix, prompt, sample)            generated and scored (False only in partial results)
    score     (mix, prompt, sample, objective) the objectives' scores (NaN where a scorer failed)

plus the per-mix summary of ``explorer.frontier.summarize``. A run is cached under a key made
of everything that determines it; a cancelled run leaves its finished chunks on disk and the
next run with the same inputs resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from transformers import StoppingCriteria, StoppingCriteriaList

from explorer.errors import SoupError
from explorer.frontier import summarize
from explorer.objectives import Objective
from explorer.sampling import SamplingConfig, encode_prompts, generate
from explorer.soup import Soup

FORMAT_VERSION = "1"  # bump when the dataset layout or the generation path changes results


class Cancelled(Exception):
    """Raised inside generation when the run's cancel event is set."""


@dataclass(frozen=True)
class Progress:
    """Where a run stands after a chunk."""

    rows_done: int
    rows_total: int
    chunks_done: int
    chunks_total: int
    elapsed_s: float
    resumed_rows: int = 0  # rows taken from a previous, cancelled run

    @property
    def fraction(self) -> float:
        return self.rows_done / max(1, self.rows_total)


@dataclass(frozen=True)
class GridSpec:
    """What to evaluate: mixes (M, N) over prompts, samples per prompt, decoding, objectives."""

    mixes: np.ndarray  # (M, N), columns in the soup's adapter order
    prompts: tuple[str, ...]
    objectives: tuple[Objective, ...]
    samples: int = 1
    sampling: SamplingConfig = SamplingConfig()

    def __post_init__(self) -> None:
        if len(self.objectives) < 2:
            raise SoupError(
                f"a frontier needs at least 2 objectives to trade off, got {[o.name for o in self.objectives]}: "
                "pass --objective twice or more"
            )
        if not self.prompts:
            raise SoupError("no prompts to evaluate: give a prompts file with one request per line")
        if int(self.samples) < 1:
            raise SoupError(f"samples must be at least 1, got {self.samples}")
        if self.samples > 1 and self.sampling.greedy:
            raise SoupError(
                f"{self.samples} samples per prompt with greedy decoding would all be equal: "
                "set a temperature > 0, or use --samples 1"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.mixes), len(self.prompts), int(self.samples)


# ------------------------------------------------------------------------------------------------
# cache keys


_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime) for this process."""
    from explorer.adapters import file_sha256

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        _hash_memo[key] = file_sha256(path)
    return _hash_memo[key]


def soup_fingerprint(soup: Soup) -> dict:
    """What determines a soup's outputs: base model files, adapters' weight hashes, dtype, device."""
    if soup.base_path is not None:
        files = sorted(
            p for p in soup.base_path.iterdir() if p.suffix in (".json", ".safetensors", ".bin", ".model")
        )
        base = {p.name: _file_hash(p) for p in files if p.is_file()}
    else:  # an in-memory model: hash its weights (slower, but exact)
        digest = hashlib.sha256()
        for name, t in soup.model.state_dict().items():
            digest.update(name.encode())
            digest.update(t.detach().to("cpu", torch.float32).numpy().tobytes())
        base = {"state_dict": digest.hexdigest()}
    return {
        "base": base,
        "adapters": {n: a.sha256 for n, a in soup.adapters.items()},
        "dtype": str(soup.dtype),
        "device": soup.device.type,
    }


def cache_key(soup: Soup, spec: GridSpec) -> str:
    """A hex key of everything that determines the results of ``spec`` on ``soup``."""
    payload = {
        "format": FORMAT_VERSION,
        "soup": soup_fingerprint(soup),
        "adapters": list(soup.names),
        "mixes": np.round(np.asarray(spec.mixes, dtype=np.float64), 12).tolist(),
        "prompts": list(spec.prompts),
        "samples": int(spec.samples),
        "sampling": asdict(spec.sampling),
        "objectives": [[o.name, o.direction, o.version, _scorer_id(o)] for o in spec.objectives],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _scorer_id(objective: Objective) -> str:
    fn = objective.scorer
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


# ------------------------------------------------------------------------------------------------
# planning rows and chunks


def plan_rows(tokenizer, spec: GridSpec) -> list[tuple[int, int, int]]:
    """Every (mix, prompt, sample) once, ordered by prompt length then prompt, so that a chunk
    mostly holds rows of one prompt (little left padding, the same numerics as one row alone)."""
    lengths = encode_prompts(tokenizer, list(spec.prompts))["attention_mask"].sum(dim=1).tolist()
    order = sorted(range(len(spec.prompts)), key=lambda p: (lengths[p], p))
    m, _, s = spec.shape
    return [(mi, p, si) for p in order for mi in range(m) for si in range(s)]


def auto_batch_size(soup: Soup, spec: GridSpec) -> int:
    """Rows per chunk: 64 on the CPU; on a GPU, as many as fit a third of the free memory
    (KV cache for prompt + new tokens and the last logits per row), at most 1024."""
    if soup.device.type != "cuda":
        return 64
    cfg = soup.model.config
    layers = getattr(cfg, "num_hidden_layers", 24)
    heads = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 16)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    tokens = 512 + int(spec.sampling.max_new_tokens)
    itemsize = torch.finfo(soup.dtype).bits // 8
    per_row = 2 * layers * heads * head_dim * tokens * itemsize + 4 * cfg.vocab_size * 4
    free, _ = torch.cuda.mem_get_info(soup.device)
    return int(max(1, min(1024, (free // 3) // per_row)))


class _CancelCriteria(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        if self.event.is_set():
            raise Cancelled
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


# ------------------------------------------------------------------------------------------------
# the run


def empty_results(soup: Soup, spec: GridSpec) -> xr.Dataset:
    """A results dataset with nothing done yet: empty texts, NaN scores."""
    m, p, s = spec.shape
    k = len(spec.objectives)
    return xr.Dataset(
        {
            "weights": (("mix", "adapter"), np.asarray(spec.mixes, dtype=np.float64)),
            "text": (("mix", "prompt", "sample"), np.full((m, p, s), "", dtype=object)),
            "n_tokens": (("mix", "prompt", "sample"), np.zeros((m, p, s), dtype=np.int32)),
            "finished": (("mix", "prompt", "sample"), np.zeros((m, p, s), dtype=bool)),
            "done": (("mix", "prompt", "sample"), np.zeros((m, p, s), dtype=bool)),
            "score": (("mix", "prompt", "sample", "objective"), np.full((m, p, s, k), np.nan)),
        },
        coords={
            "mix": np.arange(m),
            "adapter": list(soup.names),
            "prompt": np.arange(p),
            "prompt_text": ("prompt", np.array(spec.prompts, dtype=object)),
            "sample": np.arange(s),
            "objective": [o.name for o in spec.objectives],
            "direction": ("objective", [o.direction for o in spec.objectives]),
        },
        attrs={
            "sampling": json.dumps(asdict(spec.sampling)),
            "samples": int(spec.samples),
            "soup": json.dumps(soup_fingerprint(soup)),
        },
    )


def _fill(ds: xr.Dataset, rows, texts, n_tokens, finished, scores) -> None:
    for j, (mi, p, si) in enumerate(rows):
        ds["text"].values[mi, p, si] = texts[j]
        ds["n_tokens"].values[mi, p, si] = n_tokens[j]
        ds["finished"].values[mi, p, si] = finished[j]
        ds["done"].values[mi, p, si] = True
        ds["score"].values[mi, p, si, :] = scores[j]


def evaluate_grid(
    soup: Soup,
    spec: GridSpec,
    *,
    batch_size: int | None = None,
    cache: Path | str | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Progress], None] | None = None,
) -> xr.Dataset:
    """Generate and score every (mix, prompt, sample) of ``spec``; returns the summarized dataset.

    ``batch_size`` rows per chunk (default ``auto_batch_size``). With ``cache`` (a folder), a
    finished run is read back at once and a cancelled one resumes. ``cancel`` stops the run
    within one generation step; the chunks finished so far are kept (on disk with ``cache``),
    and the returned dataset has ``attrs["complete"] == 0``. ``on_chunk(partial, progress)``
    is called after every chunk with the summarized partial results.
    """
    start = time.time()
    batch = int(batch_size or auto_batch_size(soup, spec))
    if batch < 1:
        raise SoupError(f"batch size must be at least 1, got {batch}")
    key = cache_key(soup, spec)
    final_path = partial_path = None
    if cache is not None:
        folder = Path(cache).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        final_path, partial_path = folder / f"{key}.nc", folder / f"{key}.partial.jsonl"
        if final_path.is_file():
            ds = xr.load_dataset(final_path)
            if on_chunk is not None:
                n = int(ds["done"].size)
                on_chunk(ds, Progress(n, n, 1, 1, time.time() - start, resumed_rows=n))
            return ds
    ds = empty_results(soup, spec)
    ds.attrs["cache_key"] = key
    resumed = _resume(ds, partial_path) if partial_path is not None else 0
    rows = [r for r in plan_rows(soup.tokenizer, spec) if not ds["done"].values[r]]
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    total = int(ds["done"].size)
    stop = StoppingCriteriaList([_CancelCriteria(cancel)]) if cancel is not None else None
    complete = True
    for c, chunk in enumerate(chunks):
        if cancel is not None and cancel.is_set():
            complete = False
            break
        try:
            out = generate(
                soup,
                [spec.prompts[p] for _, p, _ in chunk],
                torch.as_tensor(np.asarray(spec.mixes)[[mi for mi, _, _ in chunk]]),
                config=spec.sampling,
                sample_ids=[si for _, _, si in chunk],
                stopping_criteria=stop,
            )
        except Cancelled:
            complete = False
            break
        prompts = [spec.prompts[p] for _, p, _ in chunk]
        scores = np.stack([o.score(prompts, out.texts) for o in spec.objectives], axis=1)  # (rows, K)
        n_tokens = [len(t) for t in out.token_ids]
        _fill(ds, chunk, out.texts, n_tokens, out.finished, scores)
        if partial_path is not None:
            _append_partial(partial_path, chunk, out.texts, n_tokens, out.finished, scores)
        if on_chunk is not None:
            done = int(ds["done"].values.sum())
            on_chunk(summarize(ds), Progress(done, total, c + 1, len(chunks), time.time() - start, resumed))
    ds.attrs["complete"] = int(complete)
    ds = summarize(ds)
    if complete and final_path is not None:
        _write_atomic(ds, final_path)
        partial_path.unlink(missing_ok=True)
    return ds


def load_cached(soup: Soup, spec: GridSpec, cache: Path | str) -> xr.Dataset | None:
    """The finished results of ``spec`` from the cache folder, or None (nothing is generated)."""
    path = Path(cache).expanduser() / f"{cache_key(soup, spec)}.nc"
    return xr.load_dataset(path) if path.is_file() else None


def _append_partial(path: Path, rows, texts, n_tokens, finished, scores) -> None:
    record = {
        "rows": [list(r) for r in rows],
        "texts": list(texts),
        "n_tokens": list(n_tokens),
        "finished": [bool(f) for f in finished],
        "scores": [[None if np.isnan(v) else float(v) for v in row] for row in scores],
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _resume(ds: xr.Dataset, path: Path) -> int:
    """Fill ``ds`` with the chunks a cancelled run left in ``path``; returns the rows taken."""
    if not path.is_file():
        return 0
    taken = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash: that chunk is generated again
            continue
        scores = np.array(
            [[np.nan if v is None else v for v in row] for row in r["scores"]], dtype=np.float64
        )
        rows = [tuple(x) for x in r["rows"]]
        _fill(ds, rows, r["texts"], r["n_tokens"], r["finished"], scores)
        taken += len(rows)
    return taken


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write netCDF to a temporary file beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_results(ds: xr.Dataset, path: Path | str) -> Path:
    """Save results as netCDF (atomically)."""
    out = Path(path).expanduser()
    _write_atomic(ds, out)
    return out


def load_results(path: Path | str) -> xr.Dataset:
    """Load results saved by ``save_results`` or ``explorer grid``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SoupError(f"results file {file} does not exist")
    try:
        return xr.load_dataset(file)
    except (OSError, ValueError) as err:
        raise SoupError(f"{file} is not a results file written by explorer grid: {err}") from err


def directions_of(ds: xr.Dataset) -> list[str]:
    return [str(d) for d in ds["direction"].values]


def objectives_of(ds: xr.Dataset) -> Sequence[str]:
    return [str(o) for o in ds["objective"].values]
