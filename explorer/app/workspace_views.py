"""Views of the workspace: undo and redo of the mix, the share link, the comparison's downloads."""

from __future__ import annotations

import html
import io

import panel as pn
import param
from panel.viewable import Viewer

from explorer.app.history import MixHistory
from explorer.app.share import share_query
from explorer.app.state import Session
from explorer.comparison_export import comparison_csv, comparison_markdown


class HistoryControls(Viewer):
    """Undo and redo of the mix."""

    history: MixHistory = param.ClassSelector(class_=MixHistory, allow_None=False)  # type: ignore[assignment]

    def __panel__(self):
        h = self.history
        undo = pn.widgets.Button(
            name="↶", description="Undo mix (Ctrl+Z)", button_type="light", width=40, css_classes=["undo-mix"]
        )
        redo = pn.widgets.Button(
            name="↷", description="Redo mix (Ctrl+Y)", button_type="light", width=40, css_classes=["redo-mix"]
        )
        undo.on_click(lambda e: h.undo())
        redo.on_click(lambda e: h.redo())
        undo.disabled = h.param.can_undo.rx.not_()
        redo.disabled = h.param.can_redo.rx.not_()
        return pn.Row(undo, redo, margin=0)


def share_html(produced: dict, base_url: str) -> str:
    """A link to the response shown (its mix, prompt and decoding), relative to the page, and in
    full (to copy) when the page's address is known."""
    if not produced:
        return '<div class="share"></div>'
    query = share_query(produced)
    full = (
        f'<input class="share-url" readonly value="{html.escape(base_url + query)}" style="flex:1" '
        'title="the link in full: select and copy it">'
        if base_url
        else ""
    )
    return (
        '<div class="share" style="display:flex;gap:8px;align-items:center"><small>'
        f'<a class="share-link" href="{html.escape(query)}" target="_blank" '
        'title="opens a page that regenerates this response: its mix, prompt and decoding">'
        f"Share link</a> to this response:</small>{full}</div>"
    )


class ShareView(Viewer):
    """The share link of the response on the page."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]
    base_url = param.String(default="", doc="the page's address without its query, when known")

    def __panel__(self):
        return pn.pane.HTML(
            pn.bind(share_html, self.session.param.response_for, self.param.base_url),
            sizing_mode="stretch_width",
        )


class ComparisonDownloads(Viewer):
    """The pinned responses with their mixes, prompt, decoding and scores, as Markdown and CSV."""

    session: Session = param.ClassSelector(class_=Session, allow_None=False)  # type: ignore[assignment]

    def _markdown(self) -> io.BytesIO:
        s = self.session
        return io.BytesIO(comparison_markdown(s.pinned, reference=s.reference).encode())

    def _csv(self) -> io.BytesIO:
        s = self.session
        return io.BytesIO(comparison_csv(s.pinned, reference=s.reference).encode())

    def __panel__(self):
        return pn.Row(
            pn.pane.HTML("<small>Export the comparison:</small>"),
            pn.widgets.FileDownload(
                callback=self._markdown, filename="comparison.md", label="Markdown", embed=False
            ),
            pn.widgets.FileDownload(callback=self._csv, filename="comparison.csv", label="CSV", embed=False),
            visible=self.session.param.pinned.rx.len() > 0,
            css_classes=["comparison-downloads"],
        )
