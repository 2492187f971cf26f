"""Browser tests: Debian's Chromium driven by Playwright, the app served in-process on the real demo."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.ui.browser import CHROMIUM, FLAGS


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        return  # in CI a missing browser must fail loudly, not skip
    skip = pytest.mark.skip(
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set PSE_CHROMIUM)"
    )
    for item in items:
        if "ui" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": FLAGS, "headless": True}


@pytest.fixture(scope="session")
def demo_engine(tmp_path_factory):
    """The real demo soup (SmolLM2 + the committed adapters) with a small, fast grid."""
    from explorer.app.engine import Engine
    from explorer.demo import demo_adapters, demo_base
    from explorer.objectives import get_objective
    from explorer.soup import Soup

    soup = Soup.load(demo_base(), demo_adapters(), device="cpu")
    objectives = [get_objective(n) for n in soup.names]
    prompts = ["Give me one tip for sleeping better.", "Describe a perfect summer day."]
    engine = Engine(
        soup,
        objectives,
        prompts=prompts,
        grid_prompts=prompts,
        resolution=2,
        grid_batch_size=7,
        export_dir=tmp_path_factory.mktemp("exports"),
        cache_dir=None,
    )
    yield engine
    engine.cancel_grid()
    soup.close()


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1300}}


@pytest.fixture(autouse=True)
def stop_servers():
    """Stop every Panel server a test started: their threads are not daemons and would keep the
    test process alive after the last test."""
    yield
    import panel as pn

    pn.state.kill_all_servers()
