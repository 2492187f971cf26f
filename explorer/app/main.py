"""The Panel app: ``explorer serve``, ``panel serve explorer/app/main.py``, or ``Explorer()`` in a notebook.

One engine (soup, objectives, frontier) per process serves every session; each session has its
own sliders, response and pinned mixes.
"""

from __future__ import annotations

import html
import sys
import threading
from collections.abc import Sequence

import markdown
import panel as pn
from panel.io.state import set_curdoc
from panel.viewable import Viewer

from explorer.api import api_routes
from explorer.app.brush_state import Brush
from explorer.app.choose_state import Chooser
from explorer.app.choose_views import ChoosePanel, frontier_layers
from explorer.app.engine import Engine
from explorer.app.history import MixHistory, step_grid_point
from explorer.app.keys import Shortcuts, shortcuts_help
from explorer.app.objectives_views import AllObjectivesView, brush_layers
from explorer.app.persist import COOKIE, SessionStore
from explorer.app.picks_state import PickBoard, picks_path
from explorer.app.picks_views import PicksPanel, recommendation_layer
from explorer.app.point_table import PointTable
from explorer.app.routes import guard_routes
from explorer.app.state import Session
from explorer.app.views import (
    HOW_TO,
    CompareView,
    ExportView,
    FrontierView,
    GridControls,
    MixControls,
    ResponseView,
    SimplexView,
)
from explorer.app.workspace import open_session
from explorer.app.workspace_views import ComparisonDownloads, HistoryControls, ShareView
from explorer.config import ModelOptions
from explorer.hosts import allowed_hosts, refuse_other_hosts
from explorer.launch import prepare_app
from explorer.options import AppOptions, parse_app_argv

pn.extension("tabulator", notifications=True)  # tabulator: the per-prompt table of a grid point

_ENGINES: dict[tuple, Engine] = {}
_LOCK = threading.Lock()


def shared_engine(options: ModelOptions | None = None, app: AppOptions | None = None) -> Engine:
    """The process's engine for these options, loaded once (the demo when ``options`` is None).

    The set-up (soup, objectives, prompts, a cached front) is ``explorer.launch.prepare_app``,
    the same for ``explorer serve``, ``panel serve`` and a notebook.
    """
    options, app = options or ModelOptions(), app or AppOptions()
    key = (repr(options), app)
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine.from_setup(prepare_app(options, app))
        return _ENGINES[key]


def _page_dispatch():
    """Run a state change on this session's page: from any thread, as one of its own events.

    Bokeh documents may only be changed on their own event loop; ``add_next_tick_callback`` is
    the thread-safe way in. Outside a served page (a notebook, a script) changes apply at once.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None

    def dispatch(fn):
        def apply():
            with set_curdoc(doc):
                fn()

        try:
            doc.add_next_tick_callback(apply)
        except Exception:  # the page is gone: nothing to update
            pass

    return dispatch


def _page_address(location) -> str:
    """The page's address without its query (for a share link in full), '' when unknown."""
    href = getattr(location, "href", "") or ""
    return href.split("#")[0].split("?")[0]


def how_to(keys: str = "") -> pn.pane.HTML:
    """The how-to, folded to one line (a laptop screen shows the frontier without scrolling);
    ``keys``: the shortcuts' line (HTML), shown under it when unfolded and on its line when folded."""
    body = markdown.markdown(HOW_TO)
    return pn.pane.HTML(
        f'<details class="how-to"><summary><b>How to use</b> (click to read) {keys}</summary>{body}</details>',
        sizing_mode="stretch_width",
        margin=(0, 10),
    )


class Explorer(Viewer):
    """The whole app for one session. ``Explorer()`` opens the demo; pass an ``Engine`` to share one."""

    def __init__(self, engine: Engine | None = None, **session_params):
        super().__init__()
        self.engine = engine or shared_engine()
        served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
        # a served page opens with its browser's saved session, and a share link's settings over it
        opening = open_session(
            self.engine,
            cookie=pn.state.cookies.get(COOKIE) if served else None,
            args=pn.state.session_args if served else {},
            sessions_dir=self.engine.sessions_dir if served else None,
        )
        self.session = Session(self.engine, dispatch=_page_dispatch(), **{**session_params, **opening.params})
        s = self.session
        self.store = SessionStore(s, opening.path) if opening.path is not None else None
        self.history = MixHistory(session=s)
        self.controls = MixControls(session=s, actions=[HistoryControls(history=self.history)])
        self.response = ResponseView(session=s)
        self.brush = Brush(session=s)  # the parallel coordinates' brush: every view of the grid follows it
        self.chooser = Chooser(session=s, brush=self.brush)
        self.choose = ChoosePanel(chooser=self.chooser)
        browser = opening.browser if opening.path is not None else None
        self.board = PickBoard(
            session=s, chooser=self.chooser, path=picks_path(s, browser)
        )  # picks go with the browser's session
        self.picks = PicksPanel(board=self.board)
        self.frontier = FrontierView(
            session=s,
            layers=[
                *brush_layers(self.brush),
                *frontier_layers(self.chooser),
                recommendation_layer(self.board),
            ],
        )
        self.simplex = SimplexView(session=s, kept=self.brush.param.kept)
        self.all_objectives = AllObjectivesView(brush=self.brush)
        self.grid = GridControls(session=s)
        self.compare = CompareView(session=s)
        self.point_table = PointTable(session=s)
        self.export = ExportView(session=s)
        location = pn.state.location if served else None
        self.share = ShareView(session=s, base_url=_page_address(location))
        # served pages only: in a notebook the page's keys belong to the notebook
        self.shortcuts = (
            Shortcuts(
                browser_id=opening.browser if opening.path is not None else "",
                actions={
                    "generate": s.regenerate,
                    "pin": s.pin,
                    "undo": self.history.undo,
                    "redo": self.history.redo,
                    "next": lambda: step_grid_point(s, +1),
                    "previous": lambda: step_grid_point(s, -1),
                },
            )
            if served
            else None
        )
        s.param.watch(self._notify, "message")
        if served:
            pn.state.on_session_destroyed(lambda ctx: self.close())

            def first_response() -> None:  # once the page is there to show it
                if opening.link and location is not None:
                    location.search = ""  # a reload shows the session from now on, not the link again
                if opening.shared and self.store is not None:
                    self.store.save()
                s.regenerate()
                if opening.notes:  # after regenerate, which clears the last message
                    s.message = " ".join(opening.notes)

            pn.state.onload(first_response)
        else:
            s.regenerate()

    def close(self) -> None:
        """The page is gone: save its session one last time, stop its work."""
        if self.store is not None:
            self.store.close()
        self.history.close()
        self.board.close()
        self.session.close()

    def _notify(self, event) -> None:
        """The session's message as an error toast; escaped: the toast renders HTML, and messages
        quote names from files (an adapter named ``<img onerror=...>`` must stay text)."""
        if event.new and pn.state.notifications is not None:
            pn.state.notifications.error(
                html.escape(event.new, quote=False), duration=8000
            )  # text, not an attribute: quotes stay quotes

    def sidebar(self) -> list:
        """The sidebar's parts: the mix, export (and the shortcuts, which take no room)."""
        parts = [
            self.controls,
            self.export,
            self.shortcuts,
        ]
        return [p for p in parts if p is not None]

    def main_area(self) -> pn.Column:
        return pn.Column(
            how_to(
                shortcuts_help().replace("<div", "<span").replace("</div>", "</span>")
                if self.shortcuts
                else ""
            ),
            pn.Row(
                pn.Column(
                    self.response,
                    self.frontier,
                    self.share,
                    self.point_table,
                    self.all_objectives,
                    sizing_mode="stretch_width",
                ),
                pn.Column(self.simplex, self.grid, self.choose, width=320),
                sizing_mode="stretch_width",
            ),
            self.compare,
            ComparisonDownloads(session=self.session),
            self.picks,
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return pn.Row(pn.Column(*self.sidebar(), width=320), self.main_area(), sizing_mode="stretch_width")

    def template(self) -> pn.template.FastListTemplate:
        """The page served by ``explorer serve``."""
        return pn.template.FastListTemplate(
            title="Pareto Soup Explorer",
            sidebar=self.sidebar(),
            main=[self.main_area()],
            sidebar_width=340,
            accent="#1f77b4",
            # Panel's busy spinner is one flag for every session of the process, set from whichever
            # session's event loop is working and pushed to every page: a page would look busy while
            # another works, and the push onto other sessions' documents is not safe from threads
            busy_indicator=None,
        )


def serve(
    engine: Engine,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    allow_hosts: Sequence[str] = (),
    start: bool = True,
):
    """Serve the app for every browser session, sharing ``engine``; prints the URL.

    Only requests addressed to this machine's names, ``address`` or ``allow_hosts`` are answered
    (``explorer.hosts``: no DNS rebinding); Panel's websocket origin check stays on. With
    ``start=False`` the server is returned before its loop runs (``server.io_loop.start()``).
    """
    hosts = allowed_hosts(address, port, allow_hosts)
    print(f"Pareto Soup Explorer: http://{address}:{port}/ (OpenAI-compatible API: /v1)", flush=True)
    server = pn.serve(
        lambda: Explorer(engine).template(),
        port=port,
        address=address,
        show=show,
        start=False,
        websocket_origin=[h for h in hosts if h.endswith(f":{port}") and "[" not in h],  # no IPv6 in Bokeh
        title="Pareto Soup Explorer",
        extra_patterns=api_routes(engine.scheduler),  # the OpenAI-compatible API, on the same scheduler
    )
    guard_routes(server._tornado, port)  # no component import by name, no 500 for [::1] (issue 25)
    refuse_other_hosts(server._tornado, hosts)  # Panel itself reaches the Tornado app this way
    if start:
        server.start()
        server.io_loop.start()
    return server


if __name__.startswith("bokeh_app"):  # `panel serve explorer/app/main.py`: the demo, or --args like the CLI
    Explorer(shared_engine(*parse_app_argv(sys.argv[1:]))).template().servable()
