"""Issue 25, item 1 in a real Chromium: an adapter named like HTML (``<img src=x onerror=alert(1)>``)
stays text on the page and in the error notification: no dialog opens and the browser never asks
the server for ``/x`` (what the image would load before its onerror ran)."""

from __future__ import annotations

import shutil

import pytest
from panel.tests.util import wait_until

from explorer.app.main import Explorer
from tests.tiny import tiny_app_engine
from tests.ui.test_app_ui import TIMEOUT, on_page, serve

pytestmark = [pytest.mark.ui, pytest.mark.integration]

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def evil_engine(tmp_path_factory):
    """The tiny app engine with its first adapter renamed to EVIL (straight to Soup.load: the
    command line and config files refuse such a name, explorer.names)."""
    from explorer.soup import Soup

    with tiny_app_engine(tmp_path_factory.mktemp("evil")) as engine:
        first = engine.soup.names[0]
        adapters = {(EVIL if n == first else n): a.path for n, a in engine.soup.adapters.items()}
        base = tmp_path_factory.mktemp("evil_base") / "base"
        shutil.copytree(engine.soup.base_path, base)
        soup = Soup.load(base, adapters, device="cpu", dtype="float64")
        engine.soup.close()
        engine.soup = soup
        yield engine


def test_an_html_name_in_the_error_notification_stays_text(page, evil_engine):
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    made: list[Explorer] = []

    def factory():
        explorer = Explorer(evil_engine, max_new_tokens=4)
        made.append(explorer)
        return explorer.template()

    try:
        serve(page, factory)
        wait_until(lambda: bool(made), page, timeout=TIMEOUT)
        session = made[0].session
        on_page(session, lambda: setattr(session, "message", f"cannot export adapter '{EVIL}'"))
        toast = page.locator(".notyf__message", has_text="cannot export adapter")
        toast.wait_for(timeout=TIMEOUT)
        assert f"'{EVIL}'" in toast.inner_text()  # shown as the characters it is made of, quotes too
        page.wait_for_load_state("networkidle")
    finally:
        for explorer in made:
            explorer.session.close(wait=60)
    assert dialogs == []
    assert not [u for u in requests if u.rstrip("/").endswith("/x")]


def test_the_guarded_server_serves_every_resource_the_page_asks_for(page, evil_engine):
    """Item 4: with Panel's component route guarded (explorer/app/routes.py) the page still loads
    every script, style and component resource it asks for: none answered 4xx or 5xx."""
    import asyncio
    import threading

    from explorer.app.main import serve as serve_app
    from tests.test_app_hosts import free_port

    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    port = free_port()
    box: dict = {}
    started = threading.Event()

    def run() -> None:  # its own event loop: Playwright's sync API owns this thread's
        asyncio.set_event_loop(asyncio.new_event_loop())
        box["server"] = serve_app(evil_engine, port=port, start=False)
        box["server"].start()
        started.set()
        box["server"].io_loop.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(120)
    server = box["server"]
    try:
        page.set_default_timeout(TIMEOUT)
        page.goto(f"http://localhost:{port}/", wait_until="networkidle")
        page.get_by_role("button", name="Compute frontier").wait_for(timeout=TIMEOUT)
        page.wait_for_load_state("networkidle")
        page.goto("about:blank")  # the session ends before the server does
    finally:
        server.io_loop.add_callback(server.io_loop.stop)
        thread.join(60)
    assert failed == []
