"""Saved sessions: one browser's mix, decoding, prompt, pins and choice in one small JSON file under
the cache (``sessions/<browser id>.json``), written atomically as they change, read back on reload.

A browser is recognised by a random id in a cookie (``COOKIE``, set by the page's shortcut
component, ``explorer.app.keys``); Bokeh hands the cookie to the server with the page request,
so the saved state is in the session's parameters before the page is drawn. Another browser
has another cookie and so another file. The id is checked before it names a file.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from explorer.app.state import MAX_PINS, Session
from explorer.atomic import atomic_write
from explorer.decoding import SamplingConfig
from explorer.errors import SoupError
from explorer.methods import DECODING_METHODS, METHODS
from explorer.mix import check_mix

FORMAT = "pareto-soup-explorer session"
VERSION = 1
COOKIE = "pse_browser"
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # what new_browser_id makes; nothing else names a file

# The session parameters saved. "picks" (issue 23) is saved when the session has it.
SAVED = (
    "weights",
    "simplex",
    "prompt",
    *Session.DECODING,
    "pinned",
    "reference",
    "choice",
    "x_objective",
    "y_objective",
    "picks",
)
DECODING_FIELDS = tuple(f.name for f in fields(SamplingConfig))
PIN_FIELDS = ("weights", "method", "prompt", "sampling", "response", "scores", "measured", "partial")


class SavedSessionError(SoupError):
    """A saved session file that cannot be used (damaged, another format, another set of adapters)."""


def new_browser_id() -> str:
    """A fresh random browser id (24 URL-safe characters, 144 bits)."""
    return secrets.token_urlsafe(18)


def browser_id(cookie: str | None) -> str:
    """The browser's id from its cookie when it is one we made, else a new one."""
    return cookie if cookie and _ID.match(cookie) else new_browser_id()


def session_path(folder: Path, browser: str) -> Path:
    """The file of ``browser``'s session in ``folder``; refuses an id that is not one of ours."""
    if not _ID.match(browser):
        raise SoupError(f"not a browser id: {browser!r}")
    return Path(folder) / f"{browser}.json"


# ----------------------------------------------------------------------------------------------
# the format


def snapshot(session: Session) -> dict:
    """The session's saved parameters, JSON-ready (pins without their in-flight request id)."""
    state = {name: session.param.values()[name] for name in SAVED if name in session.param}
    state["pinned"] = [{k: p[k] for k in PIN_FIELDS if k in p} for p in state["pinned"]]
    return state


def dumps(state: Mapping, *, names: Sequence[str]) -> str:
    """``state`` (``snapshot``) as the saved file's text: format, version, adapters, time, state."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "adapters": list(names),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "state": dict(state),
    }
    return json.dumps(payload, indent=1, allow_nan=True)


def loads(text: str, *, names: Sequence[str], objectives: Sequence[str]) -> dict:
    """The Session parameters saved in ``text``, every value checked; SavedSessionError says what
    is wrong with it. Objectives no longer served are dropped from the axes, not an error."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise SavedSessionError(f"it is not JSON ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SavedSessionError("it is not a saved session of this app")
    if payload.get("version") != VERSION:
        raise SavedSessionError(
            f"it has version {payload.get('version')!r}; this app reads version {VERSION}"
        )
    if list(payload.get("adapters", [])) != list(names):
        raise SavedSessionError(
            f"it was saved for the adapters {payload.get('adapters')}, and this app serves {list(names)}"
        )
    state = payload.get("state")
    if not isinstance(state, dict):
        raise SavedSessionError("it holds no state")
    out: dict[str, Any] = {}
    for name, value in state.items():
        if name not in SAVED:
            continue  # a field of a later version: ignored
        try:
            checked = check_value(name, value, names=names, objectives=objectives)
        except (SoupError, TypeError, ValueError, KeyError) as err:
            raise SavedSessionError(f"its {name} is not valid ({err})") from None
        if checked is not _DROP:
            out[name] = checked
    if "reference" in out and not (0 <= out["reference"] < max(1, len(out.get("pinned", [])))):
        out["reference"] = 0
    return out


_DROP = object()


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return float(value)


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} is not a whole number")
    return value


def _bounded(name: str, value: float) -> float:
    low, high = Session.param[name].bounds
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value} is outside [{low}, {high}]")
    return value


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not text")
    return value


def _scores(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("scores are not a mapping")
    return {
        _text(k, "objective"): (math.nan if v is None else _number_or_nan(v, k)) for k, v in value.items()
    }


def _number_or_nan(value: object, name: str) -> float:
    if isinstance(value, float) and math.isnan(value):
        return value
    return _number(value, name)


def _pin(value: object, names: Sequence[str]) -> dict:
    if not isinstance(value, dict):
        raise ValueError("a pin is not a mapping")
    sampling = value["sampling"]
    if not isinstance(sampling, dict) or set(sampling) != set(DECODING_FIELDS):
        raise ValueError(f"a pin's decoding is not a mapping of {list(DECODING_FIELDS)}")
    sampling = {k: check_value(k, v, names=names, objectives=()) for k, v in sampling.items()}
    method = value.get("method", "soup")
    if method not in METHODS:
        raise ValueError(f"a pin's method {method!r} is not one of {list(METHODS)}")
    return {
        "weights": check_mix(value["weights"], names),
        "method": method,
        "prompt": _text(value["prompt"], "a pin's prompt"),
        "sampling": asdict(SamplingConfig(**sampling)),
        "response": _text(value["response"], "a pin's response"),
        "scores": _scores(value.get("scores", {})),
        "measured": _scores(value.get("measured", {})),
        "partial": bool(value.get("partial", False)),
    }


def check_value(name: str, value: object, *, names: Sequence[str], objectives: Sequence[str]) -> object:
    """One saved value, checked (ValueError/SoupError when not valid), or _DROP to leave it out."""
    if name == "weights":
        return check_mix(value, names)  # type: ignore[arg-type]
    if name == "simplex":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value
    if name == "prompt":
        return _text(value, name)
    if name in ("max_new_tokens", "seed"):
        return _bounded(name, _integer(value, name)) if name == "max_new_tokens" else _integer(value, name)
    if name in ("temperature", "top_p"):
        return _bounded(name, _number(value, name))
    if name == "method":
        if value not in DECODING_METHODS:
            raise ValueError(f"{value!r} is not one of {list(DECODING_METHODS)}")
        return value
    if name == "pinned":
        if not isinstance(value, list) or len(value) > MAX_PINS:
            raise ValueError(f"not a list of at most {MAX_PINS} pins")
        return [_pin(p, names) for p in value]
    if name == "reference":
        return _integer(value, name)
    if name == "choice":
        if value is not None and not isinstance(value, dict):
            raise ValueError("not a mapping")
        return value
    if name in ("x_objective", "y_objective"):
        return value if value in objectives else _DROP
    if name == "picks":  # issue 23 checks its own entries; here only their container
        if not isinstance(value, list):
            raise ValueError("not a list")
        return value
    return _DROP


# ----------------------------------------------------------------------------------------------
# the files


def read_session(path: Path, *, names: Sequence[str], objectives: Sequence[str]) -> tuple[dict, str]:
    """(the Session parameters saved at ``path``, a message for the user).

    No file: nothing to restore and no message. A file that cannot be used is moved aside (to
    ``<name>.damaged``, never overwritten: the user's pins may still be read from it) and the
    message says so; the page then starts fresh."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except (OSError, UnicodeDecodeError) as err:
        text, problem = None, f"it could not be read ({err.__class__.__name__})"
    if text is not None:
        try:
            return loads(text, names=names, objectives=objectives), ""
        except SavedSessionError as err:
            problem = str(err)
    kept = path.with_name(path.name + ".damaged")
    try:
        path.replace(kept)
        where = f"it was kept as {path.parent.name}/{kept.name} in the cache folder"
    except OSError:
        where = "it was left in place"
    return {}, f"your saved session could not be restored: {problem}. The page starts fresh; {where}."


def write_session(path: Path, state: Mapping, *, names: Sequence[str]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    text = dumps(state, names=names)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class SessionStore:
    """Saves one session to its file whenever a saved parameter changes: at most one write per
    ``delay`` seconds (a slider drag changes the mix many times a second), on the session's page
    (``Session.later``); ``delay=None`` writes at once (tests, notebooks)."""

    def __init__(self, session: Session, path: Path, *, delay: float | None = 0.3):
        self.session, self.path, self.delay = session, Path(path), delay
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._failed = False
        watched = [n for n in SAVED if n in session.param]
        self._watcher = session.param.watch(self._changed, watched)

    def _changed(self, *events) -> None:
        if self.delay is None:
            self.save()
            return
        with self._lock:
            if self._timer is not None:
                return  # a write is due: it will write the newest state
            self._timer = threading.Timer(self.delay, lambda: self.session.later(self._due))
            self._timer.daemon = True
            self._timer.start()

    def _due(self) -> None:
        with self._lock:
            self._timer = None
        self.save()

    def save(self) -> None:
        """Write the session's state now; a failure is said once (the page keeps working)."""
        try:
            write_session(self.path, snapshot(self.session), names=self.session.engine.names)
            self._failed = False
        except OSError as err:
            if not self._failed:
                self._failed = True
                self.session.message = (
                    f"the session could not be saved ({err.strerror or err}): pins and the mix will not "
                    "survive a reload; check the free space and permissions of the cache folder"
                )

    def close(self) -> None:
        """Stop watching; write the last state if a write was due."""
        self.session.param.unwatch(self._watcher)
        with self._lock:
            due, self._timer = self._timer, None
        if due is not None:
            due.cancel()
            self.save()
