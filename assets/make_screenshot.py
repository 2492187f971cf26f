"""Make the README screenshot: the app on the demo, in a real Chromium, after a grid and two pins.

    python assets/make_screenshot.py            # writes assets/screenshot.png
    python assets/make_screenshot.py --size 1366x768 --out assets/screenshot-1366.png   # one laptop screen
    python assets/make_screenshot.py --size 1920x1080 --out assets/screenshot-1920.png
    python assets/make_screenshot.py --methods soup,mod --out assets/methods.png   # fronts overlaid

Computes (or reads from the cache) the app's default frontier first, so the first run takes a
few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's tests/ (the browser settings live with the UI tests)

from tests.ui.browser import CHROMIUM, FLAGS  # noqa: E402


def wait(predicate, timeout: float = 600.0) -> None:
    end = time.time() + timeout
    while not predicate():
        if time.time() > end:
            raise TimeoutError("the app did not reach the expected state in time")
        time.sleep(0.2)


def main(args: argparse.Namespace) -> None:
    import panel as pn
    from playwright.sync_api import sync_playwright

    from explorer.app import Explorer, shared_engine
    from explorer.methods import parse_methods
    from explorer.options import AppOptions
    from explorer.sampling import SamplingConfig

    methods = parse_methods([args.methods] if args.methods else None)

    defaults = AppOptions()
    engine = shared_engine(
        app=AppOptions(
            grid_prompts=args.grid_prompts or defaults.grid_prompts,
            resolution=args.resolution or defaults.resolution,
        )
    )
    for method in methods:
        if engine.grid_for(engine.grid_spec(SamplingConfig(), method=method)) is None:
            print(f"computing the {method} frontier (cached for next time)...", flush=True)
            engine.start_grid(SamplingConfig(), method=method)
            engine.wait_grid()
    made = []

    def factory():
        explorer = Explorer(engine, prompt=args.prompt, method=methods[-1])
        made.append(explorer)
        return explorer.template()

    # a session the browser is slow to connect to is kept (Bokeh drops it after 15 s by default)
    server = pn.serve(
        factory, port=args.port, threaded=True, show=False, unused_session_lifetime_milliseconds=600_000
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
            width, height = args.size or (1500, 1250)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"http://localhost:{args.port}/")
            wait(lambda: made and made[0].session.response and not made[0].session.generating)
            s = made[0].session
            names = list(s.weights)

            def show(mix: dict[str, float]) -> None:
                """Put ``mix`` on the sliders and wait for its response, scores and place on the
                frontier. The change runs on the session's page (``Session.on_page``): a served
                page's state may only change on its own event loop, never from this thread."""

                def change():
                    s.weights = {n: mix.get(n, 0.0) for n in names}
                    return s.regenerate()

                s.on_page(change).join()
                s.on_page(lambda: None)  # the worker's last updates, queued on the page, are applied

            for mix in ({names[0]: 0.8, names[1]: 0.2}, {names[-1]: 0.9, names[0]: 0.1}):
                show(mix)
                s.on_page(s.pin)
            show({n: 1.0 / len(names) for n in names})
            page.wait_for_timeout(1500)
            # with --size: the first screen, as a person with that screen sees it before scrolling
            page.screenshot(path=str(args.out), full_page=args.size is None)
            browser.close()
            s.close(wait=60)
    finally:
        server.stop()
    shrink(args.out)
    print(f"wrote {args.out}")


def shrink(path: Path) -> None:
    """A page is a few hundred colours: a 256-colour palette keeps it sharp at a third of the size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def parse_size(text: str) -> tuple[int, int]:
    """``1366x768`` -> (1366, 768)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size must be WIDTHxHEIGHT, as in 1366x768, got {text!r}"
        ) from None
    return width, height


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "screenshot.png")
    p.add_argument("--prompt", default="Give me one tip for sleeping better.")
    p.add_argument("--grid-prompts", type=int, default=None, help="default: the app's")
    p.add_argument("--resolution", type=int, default=None, help="default: the app's")
    p.add_argument("--port", type=int, default=5137)
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="browser window WIDTHxHEIGHT, first screen only (default: whole page)",
    )
    p.add_argument(
        "--methods", default=None, help="grids of these mixing methods (e.g. soup,mod), the page on the last"
    )
    p.add_argument("--chromium", default=CHROMIUM, help="default: $PSE_CHROMIUM or /usr/bin/chromium")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
