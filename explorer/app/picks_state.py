"""Side-by-side picks of one session and the trade-off learned from them.

The researcher judges two pinned responses to the same prompt ("A better", "B better", "about the
same"); each pick is appended to a JSONL file (``explorer.picks``) so it survives a reload, and
the trade-off behind the picks is refitted over the session's frontier
(``explorer.frontier.preference.learn``): lambda with its intervals, the recommended mix (ringed on
the plot, "Load" puts it on the sliders) and the pair to compare next ("compare these next" pins
both and generates their responses to the current prompt). Everything here runs on the session's
page thread (a fit takes about 0.1 s over a hundred mixes and 1-2 s over a thousand on 2 CPU cores); the views only render it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import param

from explorer.app.choose_state import Chooser
from explorer.app.state import MAX_PINS, Session, pin_key, produced_by
from explorer.errors import SoupError
from explorer.frontier.cache import soup_fingerprint
from explorer.frontier.preference import UTILITY_CHOICES, learn
from explorer.frontier.results import is_summarized, means, methods_of, objective_names
from explorer.picks import Pick, append_pick, load_picks, save_picks


def picks_path(session: Session, browser: str | None = None) -> Path | None:
    """Where a session's picks are kept: under the app's cache, in a folder per base model and
    adapter set (picks judge this model's mixes), one file per browser (``browser``: its saved
    session's id; None: one file for the model); None when the app has no cache (tests,
    ``--no-cache``): picks then live in the page only."""
    cache = session.engine.cache_dir
    if cache is None:
        return None
    fingerprint = json.dumps(soup_fingerprint(session.engine.soup), sort_keys=True, default=str)
    model = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    folder = Path(cache).parent / "picks"
    return folder / model / f"{browser}.jsonl" if browser else folder / f"{model}.jsonl"


class PickBoard(param.Parameterized):
    """The picks of one session and what they teach over its frontier."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    path = param.ClassSelector(class_=Path, default=None, allow_None=True, doc="the picks file (None: none)")
    chooser = param.ClassSelector(
        class_=Chooser, default=None, allow_None=True, doc="the Choose panel: its bounds apply here too"
    )

    a = param.Integer(default=0, doc="the pinned column judged as A")
    b = param.Integer(default=1, doc="the pinned column judged as B")
    utility: param.Selector = param.Selector(
        default="auto",
        objects=list(UTILITY_CHOICES),
        doc="the researcher's utility (auto: the better supported)",
    )
    picks = param.List(default=[], item_type=Pick, doc="every pick, oldest first")
    learned = param.Parameter(
        default=None, doc="explorer.frontier.preference.Learned over the frontier, or None"
    )
    problem = param.String(default="", doc="why nothing is learned yet")

    def __init__(self, **params):
        super().__init__(**params)
        loaded: list[Pick] = []
        if self.path is not None:
            try:
                loaded = load_picks(self.path)
            except SoupError as err:  # a damaged file is kept as it is; new picks go elsewhere
                self.session.message = f"{err} (the file is left as it is; picks of this page are not saved)"
                self.path = None
        self.picks = loaded
        self._placing = False
        # after the Chooser's own watcher (made first): its bounds are those of the new frontier
        self._watchers = [
            (self.session, self.session.param.watch(lambda e: self.update(), ["results"])),
            (self.session, self.session.param.watch(self._pins_moved, ["pinned"])),
        ]
        if self.chooser is not None:
            self._watchers.append(
                (self.chooser, self.chooser.param.watch(lambda e: self.update(), ["limits", "bound"]))
            )
        self.update()

    def _pins_moved(self, event) -> None:
        """A and B follow their pins when a pin is removed (the columns after it move left); a
        column that is gone is no longer A or B."""
        if self._placing:
            return
        old, new = event.old or [], event.new or []
        keys = [pin_key(p) for p in new]

        def follow(index: int) -> int:
            if not 0 <= index < len(old):
                return -1
            key = pin_key(old[index])
            if key in keys:
                return keys.index(key)
            # the same columns regenerated for another prompt or decoding keep their places
            return index if len(new) == len(old) else -1

        self.param.update(a=follow(self.a), b=follow(self.b))

    # ------------------------------------------------------------------------------------------
    # judging

    def can_judge(self) -> str:
        """Empty when columns ``a`` and ``b`` can be judged, else why not (for the page)."""
        pins = self.session.pinned
        if len(pins) < 2:
            return "pin two mixes to judge their responses side by side"
        if not (0 <= self.a < len(pins) and 0 <= self.b < len(pins)) or self.a == self.b:
            return "choose two different pinned columns as A and B"
        pa, pb = pins[self.a], pins[self.b]
        if pa["prompt"] != pb["prompt"] or pa["sampling"] != pb["sampling"]:
            return "A and B answer different prompts or decodings: press Regenerate pinned first"
        if pa.get("partial") or pb.get("partial"):
            return "wait until both responses are complete"
        if pin_key(pa)[:2] == pin_key(pb)[:2]:
            return "A and B are the same mix"
        return ""

    def judge(self, winner: str) -> None:
        """Store the pick "``winner``" ("a", "b" or "tie") of pinned columns ``a`` and ``b``."""
        why = self.can_judge()
        if why:
            self.session.message = why
            return
        pa, pb = self.session.pinned[self.a], self.session.pinned[self.b]
        seed = pa["sampling"].get("seed")
        pick = Pick(
            a=dict(pa["weights"]),
            b=dict(pb["weights"]),
            winner=winner,
            prompt=pa["prompt"],
            a_method=pa.get("method", "soup"),
            b_method=pb.get("method", "soup"),
            decoding=dict(pa["sampling"]),
            seed=seed if isinstance(seed, int) else None,
            time=round(time.time(), 3),
        )
        if self.path is not None:
            try:
                append_pick(self.path, pick)
            except OSError as err:
                self.session.message = f"could not save the pick to {self.path.name}: {err.strerror or err}"
        picks = [*self.picks, pick]
        if self.path is not None:
            try:
                picks = load_picks(self.path)  # with those another tab of this browser added
            except SoupError:
                pass
        self._set_picks(picks)

    def remove(self, index: int) -> None:
        """Forget the ``index``-th pick (0-based)."""
        if not 0 <= index < len(self.picks):
            return
        gone = self.picks[index]
        picks = [p for i, p in enumerate(self.picks) if i != index]
        if self.path is not None:
            try:  # the file as it is now (another tab may have added picks), less this one
                on_file = load_picks(self.path)
                if gone in on_file:
                    on_file.remove(gone)
                save_picks(self.path, on_file)
                picks = on_file
            except (OSError, SoupError) as err:
                self.session.message = f"could not save the picks to {self.path.name}: {err}"
                return
        self._set_picks(picks)

    # ------------------------------------------------------------------------------------------
    # what the picks teach

    @param.depends("utility", watch=True)
    def update(self) -> None:
        """Refit over the session's frontier (it changed, or the utility did)."""
        self._set_picks(self.picks)

    def _set_picks(self, picks: list[Pick]) -> None:
        """The picks and what they teach, changed together (a view never sees one without the other)."""
        ds = self.session.results
        if ds is None or not is_summarized(ds):
            self.param.update(picks=picks, learned=None, problem="compute the frontier to learn from picks")
            return
        where, bound = (self.chooser.constraints(), self.chooser.bound) if self.chooser else ([], "mean")
        try:
            learned = learn(ds, picks, utility=self.utility, where=[str(c) for c in where], bound=bound)
        except SoupError as err:
            self.param.update(picks=picks, learned=None, problem=str(err))
            return
        if learned.choice is not None:
            problem = ""
        elif picks:
            problem = f"none of your {len(picks)} pick(s) compares two measured mixes of this frontier (see the notes)"
        else:
            problem = "no picks yet: judge two pinned responses"
        self.param.update(picks=picks, learned=learned, problem=problem)

    def load(self) -> None:
        """Put the recommended mix on the sliders and generate its response; the picks' summary goes
        into the recipe of an export (``choice:``) while the sliders hold it."""
        if self.learned is None or self.learned.choice is None:
            return
        self.session.choice = self.learned.to_dict()
        self.session.load_mix(self.learned.choice.index)
        self.session.regenerate()

    def compare_next(self) -> None:
        """Pin the two mixes of the suggested pair (those not pinned yet) and generate their
        responses to the current prompt; A and B point at them."""
        if self.learned is None or self.learned.next_pair is None or self.learned.next_rows is None:
            self.session.message = self.problem or "no pair to compare: fewer than two mixes meet the bounds"
            return
        s = self.session
        try:
            sampling = s.sampling
        except SoupError as err:
            s.message = str(err)
            return
        ds, rows = s.results, self.learned.next_rows
        method = [methods_of(ds)[r] for r in rows]
        wanted = [
            produced_by(mix, s.prompt, sampling, m)
            for mix, m in zip(self.learned.next_pair, method, strict=True)
        ]
        pins, columns = list(s.pinned), []
        for entry in wanted:
            same = [i for i, p in enumerate(pins) if pin_key(p)[:2] == pin_key(entry)[:2]]
            if same:
                columns.append(same[0])
                continue
            if len(pins) >= MAX_PINS:
                s.message = f"at most {MAX_PINS} mixes can be pinned: unpin one to compare the next pair"
                return
            row = rows[len(columns)]
            # a grid mix: the plot puts its pin on its point
            measured = {o: float(v) for o, v in zip(objective_names(ds), means(ds)[row], strict=True)}
            pins.append(
                {
                    **entry,
                    "response": "",
                    "scores": {},
                    "measured": measured,
                    "partial": True,
                    "request": None,
                }
            )
            columns.append(len(pins) - 1)
        self._placing = True  # A and B are set here, not followed from the old pins
        try:
            self.param.update(a=columns[0], b=columns[1])
            s.pinned = pins
        finally:
            self._placing = False
        s.refresh_pins()

    def close(self) -> None:
        for owner, watcher in self._watchers:
            owner.param.unwatch(watcher)
        self._watchers = []
