"""The picks panel: judge two pinned responses, see the trade-off learned from the picks, load the
recommended mix or compare the suggested pair next; and the recommendation's ring on the frontier
plot. Views render a ``PickBoard``, nothing else.
"""

from __future__ import annotations

import html
from functools import partial

import holoviews as hv
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.picks_state import PickBoard
from explorer.mix import mix_label
from explorer.picks import describe_pick

SHOWN_PICKS = 8  # the latest picks listed (each with "remove")


class PicksPanel(Viewer):
    """A better / B better / about the same for two pinned columns, and what the picks teach."""

    board: PickBoard = param.ClassSelector(class_=PickBoard, allow_None=False)  # type: ignore[assignment]

    def __init__(self, **params):
        super().__init__(**params)
        b, s = self.board, self.board.session
        self.column_a = pn.widgets.Select(name="A", width=140, css_classes=["pick-a"])
        self.column_b = pn.widgets.Select(name="B", width=140, css_classes=["pick-b"])
        self._syncing = False  # the widgets are being set from the board: not a choice of the user
        self.column_a.param.watch(partial(self._chose, "a"), "value")
        self.column_b.param.watch(partial(self._chose, "b"), "value")
        s.param.watch(lambda *events: self._columns(), "pinned")
        b.param.watch(lambda *events: self._columns(), ["a", "b"])
        self._columns()
        self.buttons = []
        for label, winner in (("A better", "a"), ("B better", "b"), ("About the same", "tie")):
            button = pn.widgets.Button(name=label, button_type="primary" if winner != "tie" else "default")
            button.on_click(partial(lambda w, e: b.judge(w), winner))
            self.buttons.append(button)
        self.load = pn.widgets.Button(
            name="Load recommended", button_type="primary", css_classes=["load-recommended"]
        )
        self.load.on_click(lambda e: b.load())
        self.load.disabled = b.param.learned.rx().rx.pipe(lambda L: L is None or L.choice is None)
        self.next = pn.widgets.Button(name="Compare these next", css_classes=["compare-next"])
        self.next.on_click(lambda e: b.compare_next())
        self.next.disabled = b.param.learned.rx().rx.pipe(lambda L: L is None)
        self.utility = pn.widgets.Select.from_param(b.param.utility, name="utility", width=120)

    def _chose(self, side: str, event) -> None:
        if not self._syncing and event.new is not None:
            setattr(self.board, side, event.new)

    def _columns(self) -> None:
        """The A/B choices: one per pinned column, labelled with its mix."""
        b, pins = self.board, self.board.session.pinned
        options = {f"{i + 1}: {mix_label(p['weights'], digits=2)}": i for i, p in enumerate(pins)}
        self._syncing = True
        try:
            for widget, value in ((self.column_a, b.a), (self.column_b, b.b)):
                widget.options = options
                widget.value = value if 0 <= value < len(pins) else None
        finally:
            self._syncing = False

    def _status(self, pinned, a, b, picks):
        why = self.board.can_judge()
        text = why or "which response do you prefer? Each pick teaches the trade-off you want."
        return pn.pane.HTML(
            f'<small class="pick-status">{html.escape(text)}</small>', sizing_mode="stretch_width"
        )

    def _learned(self, learned, problem):
        if learned is None:
            return pn.pane.HTML(
                f'<div class="learned">{html.escape(problem)}</div>', sizing_mode="stretch_width"
            )
        rows = "".join(
            f"<tr><td>{html.escape(o)}</td><td><b>{x:.2f}</b></td>"
            f"<td>[{learned.lam_ci[o][0]:.2f}, {learned.lam_ci[o][1]:.2f}]</td></tr>"
            for o, x in learned.lam.items()
        )
        parts = [
            f"<small>learned from {learned.picks} pick(s), {html.escape(learned.utility_text)}</small>",
            f'<table class="lambda"><tr><th>objective</th><th>weight</th><th>95% interval</th></tr>{rows}</table>',
        ]
        if learned.choice is not None:
            parts.append(
                f'<div class="recommended">recommended: <b>{html.escape(mix_label(learned.choice.weights, digits=2))}</b>'
                f" ({html.escape(learned.choice.mixing)}), probability it is the best {learned.p_best:.2f}</div>"
            )
        else:
            parts.append(f"<div>{html.escape(problem)}</div>")
        if learned.next_pair is not None:
            a, c = (mix_label(m, digits=2) for m in learned.next_pair)
            parts.append(
                f'<div class="next-pair">compare next: <b>{html.escape(a)}</b> vs <b>{html.escape(c)}</b></div>'
            )
        parts.extend(f"<small>{html.escape(n)}</small><br>" for n in learned.notes[:3])
        if len(learned.notes) > 3:
            parts.append(f"<small>and {len(learned.notes) - 3} more note(s) on picks</small>")
        return pn.pane.HTML(f'<div class="learned">{"".join(parts)}</div>', sizing_mode="stretch_width")

    def _list(self, picks):
        b = self.board
        if not picks:
            return pn.pane.HTML("<small>no picks yet</small>")
        rows = []
        first = max(0, len(picks) - SHOWN_PICKS)
        for i in range(len(picks) - 1, first - 1, -1):
            remove = pn.widgets.Button(
                name="remove", button_type="light", width=70, css_classes=["remove-pick"]
            )
            remove.on_click(partial(lambda i, e: b.remove(i), i))
            text = f"{i + 1}. {describe_pick(picks[i])}"
            rows.append(pn.Row(pn.pane.HTML(f'<small class="pick-line">{html.escape(text)}</small>'), remove))
        more = f"<small>and {first} older pick(s)</small>" if first else ""
        where = (
            f" (kept in {b.path.name})" if b.path is not None else " (this page only: the app has no cache)"
        )
        return pn.Column(
            pn.pane.HTML(f"<small>{len(picks)} pick(s){html.escape(where)}</small>"),
            *rows,
            pn.pane.HTML(more),
        )

    def __panel__(self):
        b, s = self.board, self.board.session
        return pn.Column(
            pn.pane.Markdown("### Pick the better response"),
            pn.Row(self.column_a, self.column_b, *self.buttons),
            pn.bind(self._status, s.param.pinned, b.param.a, b.param.b, b.param.picks),
            pn.bind(self._learned, b.param.learned, b.param.problem),
            pn.Row(self.load, self.next, self.utility),
            pn.bind(self._list, b.param.picks),
            css_classes=["picks-panel"],
            sizing_mode="stretch_width",
        )


def recommendation_layer(board: PickBoard) -> hv.DynamicMap:
    """The mix the picks recommend, ringed (dashed) on the frontier plot's two axes."""
    s = board.session
    return hv.DynamicMap(pn.bind(_recommended, board.param.learned, s.param.x_objective, s.param.y_objective))


def _recommended(learned, x, y):
    choice = learned.choice if learned is not None else None
    data = (
        [(choice.scores[x], choice.scores[y], "recommended by your picks")]
        if choice is not None and x
        else []
    )
    return hv.Points(
        data, kdims=[x or "x", y or "y"], vdims=["recommended"], label="recommended by picks"
    ).opts(
        marker="circle",
        size=28,
        fill_alpha=0.0,
        line_color="#d62728",
        line_width=3,
        line_dash="dashed",
        tools=["hover"],
    )
