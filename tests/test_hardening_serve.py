"""Issue 25, item 4 and the served app's tracebacks: only the routes the app uses are served (no
Panel component handler that imports a module by name), an encoded ``..%2f`` is a 4xx, and the
allowed Host ``[::1]`` is sent to the page under localhost, not a 500."""

from __future__ import annotations

import http.client
import sys

import pytest

from tests import test_app_hosts

served = test_app_hosts.served  # the app on a tiny soup, on 127.0.0.1 (the same fixture)


def get(port: int, path: str, host: str | None = None) -> tuple[int, str]:
    status, body, _ = request(port, path, host)
    return status, body


def request(port: int, path: str, host: str | None = None) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    response = conn.getresponse()
    return response.status, response.read().decode("utf-8", errors="replace"), dict(response.getheaders())


def test_the_component_route_imports_no_module_by_name(served):
    sys.modules.pop("this", None)
    sys.modules.pop("wave", None)
    for module in ("this", "wave"):
        status, _ = get(served, f"/components/{module}/x/y/z.js")
        assert status == 404
        assert module not in sys.modules  # before: `this` was imported on the server (its poem printed)


@pytest.mark.parametrize(
    "path",
    [
        "/components/..%2f..%2fetc/passwd/x/y",
        "/components/%2e%2e/x/y/z",
        "/components/panel%2f..%2f../x/y/z",
        "/static/..%2f..%2fetc/passwd",
    ],
)
def test_an_encoded_dot_dot_is_refused_without_a_traceback(served, path):
    status, body = get(served, path)
    assert 400 <= status < 500 and "Traceback" not in body


def test_the_ipv6_loopback_name_is_sent_to_localhost_and_its_api_answers(served):
    for host in ("[::1]", f"[::1]:{served}"):
        status, body, headers = request(served, "/?x=1", host=host)
        assert status == 302 and headers["Location"] == f"http://localhost:{served}/?x=1"  # before: 500
        status, body = get(served, "/v1/models", host=host)
        assert status == 200 and '"object": "list"' in body.replace('":"', '": "')
    status, body = get(served, "/", host=f"localhost:{served}")
    assert status == 200 and "Pareto Soup Explorer" in body
