"""The responses of a clicked grid point prompt by prompt, in the main area: a table sortable by any
objective, with the point clicked before it beside it (its response per prompt, the words that
differ from the clicked point's marked).
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.compare import highlight_differences
from explorer.app.state import Session
from explorer.frontier.results import mix_dict, n_mixes, objective_names, prompt_texts, row_scores, row_texts
from explorer.mix import mix_label

# Tabulator's cells do not wrap by default: a response would be one long line, cut at the border
_WRAP = (
    ".tabulator-row .tabulator-cell { white-space: pre-wrap !important; overflow-wrap: anywhere; "
    "text-overflow: clip !important; }"
)


def _rounded(values) -> list[float]:
    """Scores to 4 significant digits: readable in a cell, still sorted as numbers."""
    return [float(f"{float(v):.4g}") for v in values]


def other_field(objective: str) -> str:
    """The table's column of the second point's score on ``objective``."""
    return f"other_{objective}"


def point_frame(ds, index: int, other: int | None = None) -> pd.DataFrame:
    """One row per grid prompt: the prompt, grid point ``index``'s response and its score on every
    objective; with ``other``, that point's response (as HTML, the words that differ from
    ``index``'s marked) and scores too. Sample 0 of each prompt (the one the live response equals)."""
    objectives = objective_names(ds)
    texts, scores = row_texts(ds)[index, :, 0], row_scores(ds)[index, :, 0]  # (prompt,), (prompt, objective)
    frame = pd.DataFrame({"prompt": prompt_texts(ds), "response": [str(t) for t in texts]})
    for k, o in enumerate(objectives):
        frame[o] = _rounded(scores[:, k])
    if other is not None:
        other_texts, other_scores = row_texts(ds)[other, :, 0], row_scores(ds)[other, :, 0]
        frame["other_response"] = [
            highlight_differences(str(t), str(ref)) for t, ref in zip(other_texts, texts, strict=True)
        ]
        for k, o in enumerate(objectives):
            frame[other_field(o)] = _rounded(other_scores[:, k])
    return frame


def points_header(ds, index: int | None, other: int | None) -> str:
    """Which mixes the table shows, or how to fill it."""
    if ds is None or index is None or index >= n_mixes(ds):
        return (
            '<div class="point-table-mixes"><small>Click a grid point to read its responses prompt by '
            "prompt here; click a second one to see both side by side.</small></div>"
        )
    label = html.escape(mix_label(mix_dict(ds, index), digits=2))
    text = f"Grid point <b>{label}</b>: its responses per prompt (click a column title to sort by it)"
    if other is not None and other < n_mixes(ds):
        other_label = html.escape(mix_label(mix_dict(ds, other), digits=2))
        text += (
            f"; beside it the point clicked before, <b>{other_label}</b>, its words that differ "
            "<mark>marked</mark>"
        )
    return f'<div class="point-table-mixes">{text}</div>'


class PointTable(Viewer):
    """The clicked grid point's (and the one clicked before it) responses per prompt, sortable."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def _table(self, ds, index, other):
        if ds is None or index is None or index >= n_mixes(ds):
            return pn.Spacer(height=0)
        other = other if other is not None and other < n_mixes(ds) and other != index else None
        frame = point_frame(ds, index, other)
        objectives = objective_names(ds)
        titles = {"prompt": "prompt", "response": "response"}
        titles.update({o: o for o in objectives})
        if other is not None:
            titles["other_response"] = "response of the point before"
            titles.update({other_field(o): f"{o} (before)" for o in objectives})
        return pn.widgets.Tabulator(
            frame,
            titles=titles,
            formatters={
                "prompt": {"type": "textarea"},
                "response": {"type": "textarea"},  # textarea: escaped, line breaks kept
                "other_response": {"type": "html"},  # escaped by highlight_differences, <mark> kept
            },
            text_align={o: "right" for o in objectives},
            widths={"prompt": 150, "response": 300, "other_response": 300},
            frozen_columns=["prompt"],  # kept in view when the table scrolls sideways
            show_index=False,
            disabled=True,
            selectable=False,
            layout="fit_data_stretch",
            max_height=520,
            sizing_mode="stretch_width",
            css_classes=["point-table"],
            stylesheets=[_WRAP],
        )

    def __panel__(self):
        s = self.session
        return pn.Column(
            pn.pane.HTML(
                pn.bind(points_header, s.param.results, s.param.grid_point, s.param.compare_point),
                sizing_mode="stretch_width",
            ),
            pn.bind(self._table, s.param.results, s.param.grid_point, s.param.compare_point),
            sizing_mode="stretch_width",
        )
