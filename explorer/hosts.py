"""Only answer requests addressed to this app: the Host header check against DNS rebinding.

A web page the user visits can point its own name (``evil.example``) at 127.0.0.1 and then talk
to the local app as a same-origin page: its requests carry ``Host: evil.example`` and, for the
websocket, ``Origin: http://evil.example``, which Tornado's origin check accepts because the two
agree. So every request whose Host is not one of the names the app is served under is refused
with 403 before any handler (page, websocket, static file) runs; Panel's websocket origin
check stays on top of it. ``explorer serve --allow-host NAME`` adds a name.
"""

from __future__ import annotations

from collections.abc import Iterable

from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, Rule
from tornado.web import Application, RequestHandler

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def allowed_hosts(address: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """The Host header values the app answers: this machine's names and the bound address, each
    with and without the port, and every ``extra`` name (``NAME`` or ``NAME:PORT``)."""
    names = [*LOCAL_NAMES]
    if address not in ANY_ADDRESS and address not in names:
        names.append(f"[{address}]" if ":" in address else address)
    hosts = [h for n in names for h in (n, f"{n}:{port}")]
    for name in (n.strip().lower() for n in extra):
        if name:
            hosts += [name] if _has_port(name) else [name, f"{name}:{port}"]
    return list(dict.fromkeys(hosts))


def _has_port(host: str) -> bool:
    """``name:8000`` or ``[::1]:8000`` (not ``[::1]``)."""
    tail = host.rsplit("]", 1)[-1]
    return ":" in tail and tail.rsplit(":", 1)[1].isdigit()


class _OtherHost(Matcher):
    """Matches the requests whose Host header is not one of ``hosts``."""

    def __init__(self, hosts: Iterable[str]):
        self.hosts = frozenset(h.lower() for h in hosts)

    def match(self, request: HTTPServerRequest) -> dict | None:
        return None if request.host.lower() in self.hosts else {}


class _Refuse(RequestHandler):
    """403 with a one-line reason and what to do, for every method (and the websocket upgrade)."""

    def initialize(self, hosts: Iterable[str]) -> None:
        self.hosts = sorted(hosts)

    def prepare(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(
            f"Host '{self.request.host}' is not served here: open the app at one of {self.hosts}, "
            "or start it with --allow-host NAME to serve it under that name\n"
        )


def refuse_other_hosts(app: Application, hosts: Iterable[str]) -> None:
    """Make the Tornado application ``app`` answer 403 to every request for another Host."""
    allowed = list(hosts)
    app.default_router.rules.insert(0, Rule(_OtherHost(allowed), _Refuse, {"hosts": allowed}))
