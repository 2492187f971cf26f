"""Side-by-side picks: which of two mixes' responses to one prompt the researcher liked better.

A pick is one line of a JSONL file, e.g.

    {"a": {"concise": 0.3, "positive": 0.7}, "b": {"concise": 1.0, "positive": 0.0},
     "winner": "a", "prompt": "Describe a rainy day."}

``winner`` is ``"a"``, ``"b"`` or ``"tie"`` ("about the same"). Optional keys: ``a_method`` and
``b_method`` (how each mix combines the adapters; default ``"soup"``), ``decoding`` (the sampling
settings, a mapping), ``seed`` (an int) and ``time`` (seconds since the epoch). Picks feed
``explorer.frontier.preference``, which learns the trade-off behind them.

``load_picks`` reads a file and reports a malformed line with its number; ``append_pick`` adds
one line (appending is atomic enough for one writer per file: a line is written with one call);
``remove_pick`` rewrites the file without one line. No Panel, HoloViews or Bokeh here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from explorer.atomic import atomic_write
from explorer.errors import SoupError
from explorer.methods import check_method
from explorer.mix import Mix, check_weight

WINNERS = ("a", "b", "tie")
_KEYS = {"a", "b", "winner", "prompt", "a_method", "b_method", "decoding", "seed", "time"}


@dataclass(frozen=True)
class Pick:
    """One judgment: ``winner`` of the responses of mixes ``a`` and ``b`` (adapter -> weight) to ``prompt``."""

    a: Mix
    b: Mix
    winner: str  # "a" | "b" | "tie"
    prompt: str = ""
    a_method: str = "soup"
    b_method: str = "soup"
    decoding: Mapping[str, object] = field(default_factory=dict)
    seed: int | None = None
    time: float | None = None

    def __post_init__(self) -> None:
        if self.winner not in WINNERS:
            raise SoupError(f"winner must be 'a', 'b' or 'tie' (about the same), got {self.winner!r}")
        for side in ("a", "b"):
            mix = getattr(self, side)
            if not isinstance(mix, Mapping) or not mix:
                raise SoupError(f"mix {side!r} must be a mapping adapter -> weight, e.g. {{'concise': 0.5}}")
            object.__setattr__(self, side, {str(n): _weight(n, w) for n, w in mix.items()})
        for side in ("a_method", "b_method"):
            object.__setattr__(self, side, check_method(getattr(self, side)))
        if not isinstance(self.prompt, str):
            raise SoupError(f"prompt must be text, got {type(self.prompt).__name__}")
        if not isinstance(self.decoding, Mapping):
            raise SoupError(
                f"decoding must be a mapping of sampling settings, got {type(self.decoding).__name__}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise SoupError(f"seed must be a whole number, got {self.seed!r}")
        if self.time is not None and (isinstance(self.time, bool) or not isinstance(self.time, int | float)):
            raise SoupError(f"time must be seconds since the epoch (a number), got {self.time!r}")

    @property
    def score(self) -> float:
        """1 when a won, 0 when b won, 0.5 for a tie (a tie counts half a win for each)."""
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[self.winner]

    def to_dict(self) -> dict:
        out: dict = {"a": dict(self.a), "b": dict(self.b), "winner": self.winner, "prompt": self.prompt}
        if self.a_method != "soup" or self.b_method != "soup":
            out |= {"a_method": self.a_method, "b_method": self.b_method}
        if self.decoding:
            out["decoding"] = dict(self.decoding)
        if self.seed is not None:
            out["seed"] = self.seed
        if self.time is not None:
            out["time"] = self.time
        return out

    @classmethod
    def from_dict(cls, d: object) -> Pick:
        if not isinstance(d, Mapping):
            raise SoupError(f"a pick is a JSON object with keys a, b, winner, prompt; got {type(d).__name__}")
        missing = [k for k in ("a", "b", "winner") if k not in d]
        if missing:
            raise SoupError(f"the pick has no {', '.join(missing)}: give a, b (adapter -> weight) and winner")
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise SoupError(f"unknown keys {unknown}: a pick has {', '.join(sorted(_KEYS))}")
        return cls(**{k: d[k] for k in d})


def _weight(name: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SoupError(f"weight {name}={value!r} is not a number")
    return check_weight(str(name), float(value))


def load_picks(path: str | Path) -> list[Pick]:
    """The picks in a JSONL file (one per line; blank lines skipped). A missing file holds none.

    Raises a ``SoupError`` naming the file and the line of the first malformed pick.
    """
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise SoupError(f"{path} is a folder: give the picks file (JSONL, one pick per line)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise SoupError(f"cannot read the picks file {path}: {err}") from None
    picks = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as err:
            raise SoupError(
                f"{path}, line {number}: not JSON ({_short(err)}); fix or delete the line"
            ) from None
        try:
            picks.append(Pick.from_dict(d))
        except (SoupError, TypeError) as err:
            raise SoupError(f"{path}, line {number}: {err}; fix or delete the line") from None
    return picks


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) < 120 else text[:117] + "..."


def append_pick(path: str | Path, pick: Pick) -> None:
    """Add ``pick`` as the file's last line (the file and its folder are made when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = pick.to_dict()
    if pick.time is None:
        d["time"] = round(time.time(), 3)
    line = json.dumps(d, allow_nan=False, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def save_picks(path: str | Path, picks: Sequence[Pick]) -> None:
    """Write ``picks`` as the whole file, atomically (a reader sees the old file or the new one)."""
    with atomic_write(path) as tmp:
        tmp.write_text(
            "".join(json.dumps(p.to_dict(), allow_nan=False, ensure_ascii=False) + "\n" for p in picks)
        )


def remove_pick(path: str | Path, index: int) -> Pick:
    """Remove the ``index``-th pick (0-based, as ``load_picks`` lists them); returns it."""
    picks = load_picks(path)
    if not 0 <= index < len(picks):
        raise SoupError(f"no pick {index + 1}: {path} holds {len(picks)} pick(s)")
    removed = picks.pop(index)
    save_picks(path, picks)
    return removed


def describe_pick(pick: Pick) -> str:
    """One line for people: ``a (concise=0.3, positive=0.7) better than b (...)``."""
    a, b = _mix_text(pick.a, pick.a_method), _mix_text(pick.b, pick.b_method)
    verdict = {"a": f"{a} better than {b}", "b": f"{b} better than {a}", "tie": f"{a} about the same as {b}"}
    return verdict[pick.winner]


def _mix_text(mix: Mapping[str, float], method: str) -> str:
    weights = ", ".join(f"{n}={w:.2f}" for n, w in mix.items())
    return f"({weights})" if method == "soup" else f"{method}({weights})"


__all__ = ["WINNERS", "Pick", "append_pick", "describe_pick", "load_picks", "remove_pick", "save_picks"]
