"""The Choose panel's state for one session: a bound per objective, the rule, and the mix it picks.

The rules are ``explorer.frontier.choose``'s, over the session's frontier (``Session.results``): the best
mix on one objective, the mix closest to the ideal under preference weights, or the knee; every
rule keeps to the mixes that meet the bounds. Everything here is derived on the session's page
thread whenever the frontier or a setting changes (a front of hundreds of mixes takes
milliseconds); the views only render it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import param

from explorer.app.brush_state import Brush
from explorer.app.state import Session
from explorer.direction import MAXIMIZE
from explorer.errors import SoupError
from explorer.frontier.choose import (
    Choice,
    Constraint,
    Measured,
    feasible_mask,
    pick_constrained,
    pick_knee,
    pick_preference,
)
from explorer.frontier.results import is_summarized

METHODS = {"best on one": "constraint", "preference": "preference", "knee": "knee"}  # label -> rule


class Chooser(param.Parameterized):
    """Bounds, the rule and the chosen mix over one session's frontier."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    brush = param.ClassSelector(
        class_=Brush,
        default=None,
        allow_None=True,
        doc="the parallel coordinates' brush: choose among its kept mixes",
    )

    limits = param.Dict(
        default={},
        doc="objective -> its slider's bound, in its units: at least this for a maximized objective, "
        "at most this for a minimized one; left out (or at the loose end of the range): no bound",
    )
    bound: param.Selector = param.Selector(
        default="mean",
        objects={"means": "mean", "whole interval": "ci"},
        doc="what the bounds apply to: the means, or the whole bootstrap interval (conservative)",
    )
    method: param.Selector = param.Selector(default="preference", objects=METHODS)
    target: param.Selector = param.Selector(
        default=None, objects=[], doc="'best on one': the objective to optimise"
    )
    preferences = param.Dict(default={}, doc="objective -> preference weight >= 0 ('preference')")
    knee_method: param.Selector = param.Selector(
        default="tradeoff",
        objects={"largest trade-off": "tradeoff", "farthest from the ideal-nadir line": "distance"},
        doc="'knee': how the knee is found (explorer.frontier.choose.knee_scores)",
    )

    # derived from the frontier and the settings above
    ranges = param.Dict(
        default={}, doc="objective -> (low, high) over the measured means and their intervals"
    )
    feasible = param.Array(default=None, allow_None=True, doc="(M,) measured mixes that meet every bound")
    choice = param.Parameter(default=None, doc="the chosen mix (explorer.frontier.choose.Choice), or None")
    problem = param.String(default="", doc="why no mix is chosen: no frontier yet, or none meets the bounds")
    engaged = param.Boolean(
        default=False, doc="the user set a bound or the rule: only then does the plot ring the pick"
    )

    def __init__(self, **params):
        super().__init__(**params)
        objectives = [o.name for o in self.session.engine.objectives]
        self.directions = {o.name: o.direction for o in self.session.engine.objectives}
        self.param.target.objects = objectives
        self.param.update(target=objectives[0], preferences=dict.fromkeys(objectives, 1.0))
        self._watchers = [
            self.session.param.watch(lambda event: self.update(), "results"),
            self.session.param.watch(self._left_the_choice, "weights"),
        ]
        if self.brush is not None:
            self._watchers.append(self.brush.param.watch(lambda event: self.update(), "kept"))
        self.param.watch(
            lambda event: setattr(self, "engaged", True),
            ["limits", "bound", "method", "target", "preferences", "knee_method"],
        )
        self.update()

    # ------------------------------------------------------------------------------------------
    # what the widgets set

    def set_limit(self, objective: str, value: float) -> None:
        self.limits = {**self.limits, objective: float(value)}

    def clear_limits(self) -> None:
        self.limits = {}

    def set_preference(self, objective: str, weight: float) -> None:
        self.preferences = {**self.preferences, objective: float(weight)}

    def constraints(self) -> list[Constraint]:
        """The bounds in force: each slider moved in from the loose end of its range."""
        out = []
        for objective, value in self.limits.items():
            low, high = self.ranges.get(objective, (-np.inf, np.inf))
            if self.directions[objective] == MAXIMIZE and value > low:
                out.append(Constraint(objective, ">=", value))
            elif self.directions[objective] != MAXIMIZE and value < high:
                out.append(Constraint(objective, "<=", value))
        return out

    # ------------------------------------------------------------------------------------------
    # derived state

    @param.depends("limits", "bound", "method", "target", "preferences", "knee_method", watch=True)
    def update(self) -> None:
        """Recompute the ranges, the feasible mixes and the choice from the session's frontier."""
        ds = self.session.results
        if ds is None or not is_summarized(ds):
            self.param.update(
                ranges={}, feasible=None, choice=None, problem="compute the frontier to choose a mix"
            )
            return
        measured = everything = Measured.from_dataset(ds)
        kept = self.brush.kept if self.brush is not None else None
        if kept is not None and len(kept) == len(measured.mean) and not kept.all():
            if not kept.any():
                self.param.update(
                    ranges={}, feasible=None, choice=None, problem="the brush keeps no mix: widen or clear it"
                )
                return
            measured = measured.restricted(kept)  # the brushed-out mixes count as not measured
        ranges = _ranges(measured)
        self.ranges = ranges  # the bounds in force depend on them
        where = self.constraints()
        feasible, choice, problem = None, None, ""
        try:
            feasible = feasible_mask(everything, where, bound=self.bound)  # the bounds alone
            choice = self._pick(measured, where)
        except SoupError as err:  # NoFeasibleMix says which bound excludes most and the closest mix
            problem = str(err)
        self.param.update(feasible=feasible, choice=choice, problem=problem)

    def _pick(self, measured: Measured, where: list[Constraint]) -> Choice:
        if self.method == "constraint":
            sense = "maximize" if self.directions[self.target] == MAXIMIZE else "minimize"
            return pick_constrained(measured, where=where, bound=self.bound, **{sense: self.target})
        if self.method == "knee":
            return pick_knee(measured, method=self.knee_method, where=where, bound=self.bound)
        return pick_preference(measured, self.preferences, where=where, bound=self.bound)

    # ------------------------------------------------------------------------------------------
    # load

    def load(self) -> None:
        """Put the chosen mix on the session's sliders and generate its response; the choice goes
        with it into the recipe of an export (``Session.choice``) while the sliders hold it."""
        if self.choice is None:
            return
        self.session.choice = self.choice.to_dict()  # first: the sliders then move onto it, not off it
        self.session.load_mix(self.choice.index)
        self.session.regenerate()

    def _left_the_choice(self, event) -> None:
        """The sliders moved off the loaded choice: an export no longer carries it."""
        loaded = self.session.choice
        if loaded and not _same_mix(loaded["weights"], event.new):
            self.session.choice = None

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.inst.param.unwatch(watcher)
        self._watchers = []


def _ranges(measured: Measured) -> dict[str, tuple[float, float]]:
    """objective -> (low, high) over the fully measured mixes' means and interval ends."""
    rows = measured.valid
    out = {}
    for k, objective in enumerate(measured.objectives):
        values = [measured.mean[rows, k]]
        values += [ci[rows, k] for ci in (measured.ci_low, measured.ci_high) if ci is not None]
        finite = np.concatenate(values)
        finite = finite[np.isfinite(finite)]
        if len(finite):
            out[objective] = (float(finite.min()), float(finite.max()))
    return out


def _same_mix(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(abs(float(a[n]) - float(b[n])) < 1e-9 for n in a)
