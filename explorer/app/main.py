"""The Panel app: ``explorer serve``, ``panel serve explorer/app/main.py``, or ``Explorer()`` in a notebook.

One engine (soup, objectives, frontier) per process serves every session; each session has its
own sliders, response and pinned mixes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import panel as pn
from panel.io.state import set_curdoc
from panel.viewable import Viewer

from explorer.app.engine import Engine
from explorer.app.state import Session
from explorer.app.views import (
    CompareView,
    ExportView,
    FrontierView,
    GridControls,
    MixControls,
    ResponseView,
    SimplexView,
)
from explorer.config import ModelOptions

pn.extension(notifications=True)

_ENGINES: dict[tuple, Engine] = {}
_LOCK = threading.Lock()


def shared_engine(
    options: ModelOptions | None = None,
    *,
    objectives: Sequence[str] = (),
    prompts_file: str | None = None,
    grid_prompts: int = 16,
    resolution: int = 5,
    grid_batch_size: int = 8,
    export_dir: str | Path | None = None,
) -> Engine:
    """The process's engine for these options, loaded once (the demo when ``options`` is None)."""
    from explorer.demo import cache_dir
    from explorer.evaluation import load_cached
    from explorer.launch import open_soup
    from explorer.objectives import BUILTINS, get_objective, get_objectives
    from explorer.prompts import HELDOUT, TRAIN, read_prompts
    from explorer.sampling import SamplingConfig

    options = options or ModelOptions()
    key = (
        repr(options),
        tuple(objectives),
        prompts_file,
        grid_prompts,
        resolution,
        grid_batch_size,
        str(export_dir),
    )
    with _LOCK:
        if key in _ENGINES:
            return _ENGINES[key]
        soup = open_soup(options)
        objs = (
            get_objectives(objectives)
            if objectives
            else [get_objective(n) for n in soup.names if n in BUILTINS]
        )
        if not objs:
            objs = get_objectives(["concise", "readable"])
        held = read_prompts(prompts_file or HELDOUT)
        presets = held + ([] if prompts_file else read_prompts(TRAIN)[:20])
        engine = Engine(
            soup,
            objs,
            prompts=presets,
            grid_prompts=held[:grid_prompts],
            resolution=resolution,
            grid_batch_size=grid_batch_size,
            export_dir=Path(export_dir or Path.cwd() / "exports"),
            cache_dir=cache_dir() / "frontiers",
        )
        if len(objs) > 1:  # a front computed before appears at once
            cached = load_cached(soup, engine.grid_spec(SamplingConfig(max_new_tokens=48)), engine.cache_dir)
            if cached is not None:
                engine.param.update(
                    results=cached, grid_progress=1.0, grid_message="frontier read from the cache"
                )
        _ENGINES[key] = engine
        return engine


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


class Explorer(Viewer):
    """The whole app for one session. ``Explorer()`` opens the demo; pass an ``Engine`` to share one."""

    def __init__(self, engine: Engine | None = None, **session_params):
        super().__init__()
        self.engine = engine or shared_engine()
        session_params.setdefault("max_new_tokens", 48)
        self.session = Session(self.engine, dispatch=_page_dispatch(), **session_params)
        s = self.session
        self.controls = MixControls(session=s)
        self.response = ResponseView(session=s)
        self.frontier = FrontierView(session=s)
        self.simplex = SimplexView(session=s)
        self.grid = GridControls(session=s)
        self.compare = CompareView(session=s)
        self.export = ExportView(session=s)
        s.param.watch(self._notify, "message")
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda ctx: s.close())
            pn.state.onload(s.regenerate)  # the first response, once the page is there to show it
        else:
            s.regenerate()

    def _notify(self, event) -> None:
        if event.new and pn.state.notifications is not None:
            pn.state.notifications.error(event.new, duration=8000)

    def main_area(self) -> pn.Column:
        return pn.Column(
            pn.Row(
                pn.Column(self.response, self.frontier, sizing_mode="stretch_width"),
                pn.Column(self.simplex, self.grid, width=320),
                sizing_mode="stretch_width",
            ),
            self.compare,
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return pn.Row(
            pn.Column(self.controls, self.export, width=320), self.main_area(), sizing_mode="stretch_width"
        )

    def template(self) -> pn.template.FastListTemplate:
        """The page served by ``explorer serve``."""
        return pn.template.FastListTemplate(
            title="Pareto Soup Explorer",
            sidebar=[self.controls, self.export],
            main=[self.main_area()],
            sidebar_width=340,
            accent="#1f77b4",
        )


def serve(
    engine: Engine,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    threaded: bool = False,
):
    """Serve the app for every browser session, sharing ``engine``; prints the URL."""
    origin = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    print(f"Pareto Soup Explorer: http://{address}:{port}/", flush=True)
    return pn.serve(
        lambda: Explorer(engine).template(),
        port=port,
        address=address,
        show=show,
        threaded=threaded,
        websocket_origin=origin,
        title="Pareto Soup Explorer",
    )


if __name__.startswith("bokeh_app"):  # `panel serve explorer/app/main.py`: the demo, or --args like the CLI
    import sys

    from explorer.serve_cli import engine_from_argv

    Explorer(engine_from_argv(sys.argv[1:])).template().servable()
