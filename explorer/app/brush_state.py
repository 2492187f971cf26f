"""The brush of one session: a range per axis of the parallel-coordinates view (objectives and
adapters' weights) and the mixes it keeps, which every view of the grid follows (the 2-D frontier
greys the others, the simplex too, the Choose panel chooses among the kept ones).

The filtering itself is ``explorer.frontier.brush``; this class only holds the ranges and derives
``kept`` whenever the ranges or the session's frontier change.
"""

from __future__ import annotations

import numpy as np
import param

from explorer.app.state import Session
from explorer.frontier.brush import kept_mixes


class Brush(param.Parameterized):
    """Per-axis ranges over one session's frontier and the mixes they keep."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    ranges = param.Dict(
        default={}, doc="axis (an objective, or w_<adapter> for a weight) -> (low, high) in its units"
    )
    kept = param.Array(
        default=None, allow_None=True, doc="(M,) the frontier's mixes the ranges keep; None: no frontier"
    )

    def __init__(self, **params):
        super().__init__(**params)
        self._watcher = self.session.param.watch(lambda event: self.update(), "results")
        self.update()

    def set_range(self, axis: str, low: float, high: float) -> None:
        """Keep only the mixes whose ``axis`` lies in [low, high] (ends in either order)."""
        low, high = sorted((float(low), float(high)))
        self.ranges = {**self.ranges, axis: (low, high)}

    def clear(self, axis: str | None = None) -> None:
        """Drop the range on ``axis``, or every range."""
        self.ranges = {} if axis is None else {a: r for a, r in self.ranges.items() if a != axis}

    @param.depends("ranges", watch=True)
    def update(self) -> None:
        kept = kept_mixes(self.session.results, self.ranges)
        if kept is None or self.kept is None or not np.array_equal(kept, self.kept):
            self.kept = kept

    @property
    def active(self) -> bool:
        """Some mix is filtered out."""
        return self.kept is not None and not bool(self.kept.all())

    def close(self) -> None:
        self.session.param.unwatch(self._watcher)
