"""Going back and forth: undo and redo of the mix, and stepping from grid point to grid point.

The history holds the mixes the session generated a response for, in order: a slider drag is
one entry (its release asks for one response), as are a grid click, a preset, a Choose load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import param

from explorer.app.state import Session
from explorer.frontier.results import is_summarized, means, objective_names

MAX_HISTORY = 200  # mixes kept; older ones are dropped


def same_mix(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """The same adapters with the same weights (to 1e-9)."""
    return a.keys() == b.keys() and all(math.isclose(a[n], b[n], abs_tol=1e-9) for n in a)


def on_simplex(weights: Mapping[str, float]) -> bool:
    return min(weights.values()) >= 0 and math.isclose(sum(weights.values()), 1.0, abs_tol=1e-9)


class MixHistory(param.Parameterized):
    """Undo and redo of one session's mix. Undo first returns to the last mix generated for when
    the sliders moved since (a drag not yet generated for), then to the ones before it."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    entries = param.List(default=[], doc="the mixes generated for, oldest first")
    position = param.Integer(default=-1, doc="the entry on the sliders (-1: none yet)")
    can_undo = param.Boolean(default=False)
    can_redo = param.Boolean(default=False)

    def __init__(self, **params):
        super().__init__(**params)
        s = self.session
        self._watchers = [
            s.param.watch(self._generated, "response_for"),
            s.param.watch(self._update_flags, "weights"),
        ]
        if s.response_for:
            self._record(s.response_for["weights"])

    def _generated(self, event) -> None:
        if event.new:
            self._record(event.new["weights"])

    def _record(self, weights: Mapping[str, float]) -> None:
        """A new mix after the current entry: the redo branch is dropped (as in any editor)."""
        if self.position >= 0 and same_mix(self.entries[self.position], weights):
            return
        entries = [*self.entries[: self.position + 1], dict(weights)][-MAX_HISTORY:]
        self.param.update(entries=entries, position=len(entries) - 1)
        self._update_flags()

    def _update_flags(self, *events) -> None:
        moved = self.position >= 0 and not same_mix(self.entries[self.position], self.session.weights)
        self.param.update(
            can_undo=self.position > 0 or moved, can_redo=not moved and self.position < len(self.entries) - 1
        )

    def undo(self) -> None:
        """Put the previous mix back on the sliders and generate its response."""
        if self.position >= 0 and not same_mix(self.entries[self.position], self.session.weights):
            self._record(self.session.weights)  # the moved mix, so that redo returns to it
        if self.position > 0:
            self._go(self.position - 1)

    def redo(self) -> None:
        """Put the mix undone last back on the sliders and generate its response."""
        if 0 <= self.position < len(self.entries) - 1:
            self._go(self.position + 1)

    def _go(self, index: int) -> None:
        s, mix = self.session, dict(self.entries[index])
        self.position = index  # first: the response asked for below is this entry, not a new one
        if s.simplex and not on_simplex(mix):
            s.simplex = False  # a mix off the simplex cannot stay on it
        s.weights = mix
        self._update_flags()
        s.regenerate()

    def close(self) -> None:
        for watcher in self._watchers:
            self.session.param.unwatch(watcher)
        self._watchers = []


def grid_order(session: Session) -> list[int]:
    """The measured grid mixes from left to right on the plot (by the x axis, then the y axis)."""
    ds = session.results
    if ds is None or not is_summarized(ds) or session.x_objective is None:
        return []
    k = {o: i for i, o in enumerate(objective_names(ds))}
    mean = means(ds)
    x, y = mean[:, k[session.x_objective]], mean[:, k[session.y_objective]]
    measured = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    return sorted(measured.tolist(), key=lambda m: (x[m], y[m], m))


def step_grid_point(session: Session, step: int) -> None:
    """Load the grid point ``step`` places right (+1) or left (-1) of the last one loaded along the
    plot's x axis, and generate its response; the first step goes to an end. Stops at the ends."""
    order = grid_order(session)
    if not order:
        session.message = "no grid point to step to yet: press 'Compute frontier' first"
        return
    if session.grid_point in order:
        index = min(max(order.index(session.grid_point) + step, 0), len(order) - 1)
    else:
        index = 0 if step > 0 else len(order) - 1
    if order[index] == session.grid_point:
        return
    session.load_mix(order[index])
    session.regenerate()
