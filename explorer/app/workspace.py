"""What a page opens with: the browser's saved session, then a share link's mix, prompt and
decoding over it; and the parts that keep the session afterwards (saving, history, keys)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from explorer.app.engine import Engine
from explorer.app.persist import browser_id, read_session, session_path
from explorer.app.share import SHARE_KEYS, ShareLinkError, parse_share


@dataclass
class Opening:
    """How one page opens."""

    params: dict = field(default_factory=dict)  # Session parameters: saved session, then share link
    notes: list[str] = field(default_factory=list)  # what the user should read (a damaged file, a bad link)
    path: Path | None = None  # the session's file (None: nothing is saved, e.g. no cache folder)
    browser: str = ""  # the browser's id, for its cookie
    shared: bool = False  # a share link set the mix, prompt or decoding
    link: bool = False  # the address held a share link (opened or not): the page clears it


def open_session(
    engine: Engine,
    *,
    cookie: str | None,
    args: Mapping[str, Sequence[bytes | str]],
    sessions_dir: Path | None,
) -> Opening:
    """The page's opening for the browser whose cookie is ``cookie``, visiting with the query
    arguments ``args``; saved sessions live in ``sessions_dir`` (None: none are kept)."""
    opening = Opening(browser=browser_id(cookie))
    objectives = [o.name for o in engine.objectives]
    if sessions_dir is not None:
        opening.path = session_path(sessions_dir, opening.browser)
        saved, note = read_session(opening.path, names=engine.names, objectives=objectives)
        opening.params.update(saved)
        if note:
            opening.notes.append(note)
    opening.link = any(k in SHARE_KEYS for k in args)
    try:
        shared = parse_share(args, names=engine.names)
    except ShareLinkError as err:
        opening.notes.append(str(err))
        shared = None
    if shared:
        opening.params.update(shared)
        opening.shared = True
    return opening
