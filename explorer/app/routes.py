"""Only the Panel routes the app uses, safely: two guards put in front of Panel's own routes.

* ``/components/<module>/<class>/<attr>/<file>``: Panel's component resource handler imports
  ``<module>`` by name (``GET /components/this/x/y/z.js`` ran ``import this`` on the server, and
  any web page can send that GET to 127.0.0.1). Here it serves only modules already imported by
  Panel, Bokeh or this app, never imports one, and answers 404 to anything else, encoded
  ``..%2f`` included (it was a 500 with a traceback).
* Pages asked for under an IPv6 literal Host (``[::1]``, allowed): Panel's location parser
  cannot split ``[::1]:5006`` (a 500) and Bokeh's websocket check takes no IPv6 names, so the
  page is redirected to ``localhost`` on the same port; the API (``/v1``) answers as it is.
"""

from __future__ import annotations

import sys

from panel.io.server import ComponentResourceHandler
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, PathMatches, Rule
from tornado.web import Application, HTTPError, RequestHandler

SERVED_PACKAGES = ("panel", "bokeh", "explorer")  # whose already-imported components may serve files


class _LoadedComponents(ComponentResourceHandler):
    """Panel's component resource handler restricted to modules already imported."""

    def parse_url_path(self, path: str) -> str:
        parts = path.split("/")
        module = parts[0]
        if ".." in parts or module not in sys.modules or module.split(".")[0] not in SERVED_PACKAGES:
            raise HTTPError(404)
        try:
            return super().parse_url_path(path)
        except HTTPError:
            raise
        except Exception:  # a malformed path deeper down: not found, never a traceback
            raise HTTPError(404) from None


class _Ipv6Page(Matcher):
    """Requests for a page (not the API) whose Host is an IPv6 literal."""

    def match(self, request: HTTPServerRequest) -> dict | None:
        host_is_ipv6 = request.host.startswith("[")
        return {} if host_is_ipv6 and not (request.path or "").startswith("/v1") else None


def guard_routes(app: Application, port: int) -> None:
    """Put the guards in front of the Tornado application ``app``'s routes (call it before
    ``explorer.hosts.refuse_other_hosts``, which must stay first)."""
    rules = [
        Rule(_Ipv6Page(), _RedirectToLocalhost, {"port": port}),
        Rule(PathMatches(r"/components/(.*)"), _LoadedComponents, {}),
    ]
    app.default_router.rules[0:0] = rules


class _RedirectToLocalhost(RequestHandler):
    def initialize(self, port: int) -> None:
        self.port = port

    def get(self) -> None:
        self.redirect(f"http://localhost:{self.port}{self.request.uri}")

    head = get
