"""Issue 15, item 1: DNS rebinding. The served app, driven by a real HTTP and websocket client, refuses
a request whose Host (and Origin) is another website's name, and still serves its own names."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from explorer.app.engine import Engine
from explorer.app.main import serve
from explorer.hosts import allowed_hosts
from explorer.objectives import BUILTINS
from explorer.soup import Soup
from tests.tiny import LETTERS, write_tiny_soup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a tiny soup, served on 127.0.0.1 with one extra name allowed; yields the port."""
    root = tmp_path_factory.mktemp("hosts")
    base, adapters = write_tiny_soup(root, "llama")
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    engine = Engine(
        soup,
        [BUILTINS["concise"], LETTERS],
        prompts=["Why is the sky blue?"],
        grid_prompts=["Why is the sky blue?"],
        resolution=1,
        export_dir=root / "exports",
    )
    port = free_port()
    server = serve(engine, port=port, allow_hosts=["explorer.lab"], start=False)
    server.start()
    thread = threading.Thread(target=server.io_loop.start, daemon=True)
    thread.start()
    yield port
    server.io_loop.add_callback(server.io_loop.stop)
    thread.join(60)
    server.stop()
    soup.close()


def get(port: int, host: str, origin: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    conn.request("GET", "/", headers=headers)
    response = conn.getresponse()
    return response.status, response.read().decode("utf-8", errors="replace")


def test_a_rebound_host_is_refused_and_the_apps_own_names_are_served(served):
    port = served
    status, body = get(port, f"evil.example:{port}", origin=f"http://evil.example:{port}")
    assert status == 403  # before: 200 and the page, a website could drive the app
    assert "Host 'evil.example:" in body and "--allow-host" in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"explorer.lab:{port}"):
        status, body = get(port, host)
        assert status == 200 and "Pareto Soup Explorer" in body  # nothing lost for the user


def test_a_websocket_from_a_rebound_host_is_refused(served):
    port = served

    async def connect(host: str, origin: str) -> int:
        request = HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers={"Host": host, "Origin": origin})
        try:
            ws = await websocket_connect(request)
        except HTTPClientError as err:
            return err.code
        ws.close()
        return 101

    # Origin equal to Host: Tornado's own origin check would let it through
    assert asyncio.run(connect(f"evil.example:{port}", f"http://evil.example:{port}")) == 403
    # the app's own Host but another site's Origin: Panel's websocket origin check refuses it
    assert asyncio.run(connect(f"127.0.0.1:{port}", "http://evil.example")) == 403


def test_allowed_hosts():
    hosts = allowed_hosts("0.0.0.0", 5006, ["Lab.example", "box:8000", "[::1]"])
    assert {
        "127.0.0.1:5006",
        "localhost",
        "lab.example",
        "lab.example:5006",
        "box:8000",
        "[::1]:5006",
    } <= set(hosts)
    assert "0.0.0.0:5006" not in hosts and "box:8000:5006" not in hosts
