"""The workspace without a browser: saved sessions, share links, undo/redo, grid stepping and the
comparison's Markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from explorer.app.history import MixHistory, grid_order, step_grid_point
from explorer.app.persist import (
    COOKIE,
    SessionStore,
    browser_id,
    dumps,
    loads,
    new_browser_id,
    read_session,
    session_path,
    snapshot,
)
from explorer.app.share import ShareLinkError, parse_share, share_query
from explorer.app.state import Session
from explorer.app.workspace import open_session
from explorer.comparison_export import comparison_csv, comparison_markdown, comparison_rows
from explorer.errors import SoupError


def pin(weights, response, *, prompt="Say hi.", scores=None, measured=None, **sampling):
    return {
        "weights": weights,
        "method": "soup",
        "prompt": prompt,
        "sampling": {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "seed": 0, **sampling},
        "response": response,
        "scores": scores if scores is not None else {"concise": 3.0, "letters": 0.5},
        "measured": measured if measured is not None else {},
        "partial": False,
    }


# ----------------------------------------------------------------------------------------------
# saved sessions


@pytest.fixture
def pinned_session(session):
    """A session with a moved mix, other decoding, a prompt, two pins and a choice."""
    names = list(session.weights)
    for i, name in enumerate(names[:2]):
        session.weights = {n: float(n == name) for n in names}
        session.regenerate(wait=True)
        session.pin()
        assert len(session.pinned) == i + 1
    values = {
        "weights": {names[0]: 0.2, names[1]: 0.3, names[2]: 0.5},
        "prompt": "Name three colours.",
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "reference": 1,
        "x_objective": "letters",
        "y_objective": "concise",
        "choice": {"method": "knee", "weights": {names[0]: 0.2, names[1]: 0.3, names[2]: 0.5}},
    }
    for name, value in values.items():  # one at a time: Session's grid watcher takes one event (issue 22, 1)
        setattr(session, name, value)
    return session


def test_a_saved_session_round_trips(pinned_session, engine, tmp_path):
    s = pinned_session
    path = session_path(tmp_path, new_browser_id())
    SessionStore(s, path, delay=None).save()
    params, note = read_session(path, names=engine.names, objectives=["concise", "letters"])
    assert note == ""
    restored = Session(engine, **params)
    try:
        for name in (
            *("weights", "prompt", "temperature", "top_p", "seed", "reference", "choice", "simplex"),
            *("x_objective", "y_objective"),
        ):
            assert getattr(restored, name) == getattr(s, name), name
        assert [p["response"] for p in restored.pinned] == [p["response"] for p in s.pinned]
        assert restored.pinned == snapshot(s)["pinned"]  # mixes, prompts, decoding, scores
        assert all("request" not in p for p in restored.pinned)  # no id of a request of another page
    finally:
        restored.close(wait=60)


def test_the_store_writes_each_change(session, engine, tmp_path):
    path = session_path(tmp_path, new_browser_id())
    store = SessionStore(session, path, delay=None)
    session.prompt = "Count to three."
    assert json.loads(path.read_text())["state"]["prompt"] == "Count to three."
    session.temperature = 0.5
    assert loads(path.read_text(), names=engine.names, objectives=[])["temperature"] == 0.5
    store.close()
    session.prompt = "after close"
    assert json.loads(path.read_text())["state"]["prompt"] == "Count to three."


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda text: text[: len(text) // 2], "not JSON"),
        (lambda text: "[1, 2]", "not a saved session"),
        (lambda text: text.replace('"version": 1', '"version": 99'), "version 99"),
        (lambda text: text.replace('"temperature": 0.0', '"temperature": 7.5'), "temperature"),
        (lambda text: text.replace('"seed": 0', '"seed": "zero"'), "seed"),
        (lambda text: text.replace('"prompt": "Say hi."', '"prompt": 12'), "prompt"),
        (lambda text: text.replace('"helpful"', '"someone else"', 1), "adapters"),
    ],
)
def test_a_damaged_file_starts_fresh_with_a_message(engine, tmp_path, damage, reason):
    state = {"weights": {n: 1 / 3 for n in engine.names}, "temperature": 0.0, "seed": 0}
    state["pinned"] = [pin({n: 1 / 3 for n in engine.names}, "hi")]
    path = session_path(tmp_path, new_browser_id())
    text = dumps(state, names=engine.names)
    assert loads(text, names=engine.names, objectives=[])["temperature"] == 0.0  # undamaged: reads
    path.write_text(damage(text))
    params, note = read_session(path, names=engine.names, objectives=[])
    assert params == {}
    assert "could not be restored" in note and reason in note and "starts fresh" in note
    assert str(tmp_path) not in note  # no path of the machine on the page
    assert not path.exists() and path.with_name(path.name + ".damaged").read_text() == damage(text)


def test_no_file_restores_nothing_quietly(engine, tmp_path):
    assert read_session(tmp_path / "none.json", names=engine.names, objectives=[]) == ({}, "")


def test_browser_ids_are_checked_before_they_name_a_file(tmp_path):
    mine = new_browser_id()
    assert browser_id(mine) == mine
    for bad in (None, "", "../../etc/passwd", "short", "a" * 65, "with space in it 12345"):
        fresh = browser_id(bad)
        assert fresh != bad and session_path(tmp_path, fresh).parent == tmp_path
    with pytest.raises(SoupError, match="not a browser id"):
        session_path(tmp_path, "../escape-attempt-123456")
    assert new_browser_id() != new_browser_id()


def test_two_browsers_open_their_own_sessions(engine, tmp_path):
    a, b = new_browser_id(), new_browser_id()
    state = {"prompt": "A's prompt", "pinned": [pin({n: 1 / 3 for n in engine.names}, "A's pin")]}
    session_path(tmp_path, a).write_text(dumps(state, names=engine.names))
    opened_a = open_session(engine, cookie=a, args={}, sessions_dir=tmp_path)
    opened_b = open_session(engine, cookie=b, args={}, sessions_dir=tmp_path)
    assert opened_a.params["prompt"] == "A's prompt" and len(opened_a.params["pinned"]) == 1
    assert opened_b.params == {} and opened_b.path != opened_a.path
    new = open_session(engine, cookie=None, args={}, sessions_dir=tmp_path)
    assert new.params == {} and new.browser not in (a, b)
    assert COOKIE == "pse_browser"


# ----------------------------------------------------------------------------------------------
# share links


def test_a_share_link_carries_the_exact_mix_prompt_and_decoding(engine):
    names = engine.names
    produced = {
        "weights": {names[0]: 1 / 3, names[1]: 1 / 3, names[2]: 1 / 3},
        "method": "mod",
        "prompt": "Why? & how = 100%",
        "sampling": {"max_new_tokens": 17, "temperature": 0.7, "top_p": 0.9, "seed": 5},
    }
    query = share_query(produced)
    from urllib.parse import parse_qs

    params = parse_share(parse_qs(query[1:]), names=names)
    assert params["weights"] == produced["weights"]  # exactly: the same response
    assert params["prompt"] == produced["prompt"] and params["method"] == "mod"
    assert (params["max_new_tokens"], params["temperature"], params["top_p"], params["seed"]) == (
        17,
        0.7,
        0.9,
        5,
    )
    assert params["simplex"] is True


def test_a_share_link_off_the_simplex_turns_it_off(engine):
    a, b, c = engine.names
    params = parse_share({"mix": [f"{a}=1.5,{b}=-0.5".encode()]}, names=engine.names)
    assert params == {"weights": {a: 1.5, b: -0.5, c: 0.0}, "simplex": False}


def test_a_plain_visit_is_no_share_link(engine):
    assert parse_share({}, names=engine.names) is None
    assert parse_share({"theme": [b"dark"]}, names=engine.names) is None


@pytest.mark.parametrize(
    "args, says",
    [
        ({"mix": [b"nobody=1"]}, "not adapters"),
        ({"mix": [b"helpful=abc"]}, "must be a number"),
        ({"mix": [b"helpful=nan"]}, "finite"),
        ({"temperature": [b"hot"]}, "temperature='hot' is not a number"),
        ({"temperature": [b"9"]}, "temperature=9.0 is outside"),
        ({"max_new_tokens": [b"1.5"]}, "not a whole number"),
        ({"max_new_tokens": [b"0"]}, "outside"),
        ({"top_p": [b"inf"]}, "top_p"),
        ({"seed": [b"1", b"2"]}, "given 2 times"),
        ({"method": [b"magic"]}, "'magic' is not one of"),
        ({"prompt": [b"\xff\xfe"]}, "not UTF-8"),
        ({"prompt": [b"   "]}, "prompt is empty"),
    ],
)
def test_bad_share_links_say_what_is_wrong(engine, args, says):
    with pytest.raises(ShareLinkError) as info:
        parse_share({**args, "prompt": args.get("prompt", [b"ok"])}, names=engine.names)
    assert says in str(info.value) and "could not be opened" in str(info.value)


def test_a_bad_share_link_opens_the_saved_session_with_a_message(engine, tmp_path):
    me = new_browser_id()
    session_path(tmp_path, me).write_text(dumps({"prompt": "mine"}, names=engine.names))
    opened = open_session(engine, cookie=me, args={"temperature": [b"x"]}, sessions_dir=tmp_path)
    assert opened.params == {"prompt": "mine"} and not opened.shared and opened.link
    assert "could not be opened" in opened.notes[0]
    good = open_session(engine, cookie=me, args={"prompt": [b"theirs"]}, sessions_dir=tmp_path)
    assert good.params == {"prompt": "theirs"} and good.shared and good.link and not good.notes
    plain = open_session(engine, cookie=me, args={"theme": [b"dark"]}, sessions_dir=tmp_path)
    assert not plain.link and not plain.shared


# ----------------------------------------------------------------------------------------------
# undo and redo of the mix, grid stepping


def test_undo_and_redo_walk_the_mixes_generated_for(session):
    history = MixHistory(session=session)
    names = list(session.weights)
    first = dict(session.weights)
    session.regenerate(wait=True)
    mixes = [first]
    for name in names[:2]:
        session.weights = {n: float(n == name) for n in names}
        session.regenerate(wait=True)
        mixes.append(dict(session.weights))
    assert history.entries == mixes and history.can_undo and not history.can_redo
    history.undo()
    assert session.weights == mixes[1] and session.response_for["weights"] == mixes[1]
    history.undo()
    assert session.weights == first and not history.can_undo and history.can_redo
    history.redo()
    assert session.weights == mixes[1]
    session.weights = {n: float(n == names[2]) for n in names}  # moved, not generated yet
    assert history.can_undo and not history.can_redo
    history.undo()  # back to the last mix generated for; redo returns to the moved one
    assert session.weights == mixes[1]
    history.redo()
    assert session.weights == {n: float(n == names[2]) for n in names}
    session.regenerate(wait=True)
    history.close()


def test_undo_to_a_mix_off_the_simplex_leaves_the_simplex(session):
    history = MixHistory(session=session)
    session.regenerate(wait=True)
    session.simplex = False
    session.weights = {**session.weights, "helpful": 1.7}
    session.regenerate(wait=True)
    session.simplex = True  # projects the mix back onto the simplex and regenerates
    session._worker and session._worker.join(60)
    history.undo()
    assert session.weights["helpful"] == pytest.approx(1.7) and not session.simplex
    session._worker and session._worker.join(60)
    history.close()


def test_grid_point_keys_step_along_the_x_axis(session, engine):
    step_grid_point(session, +1)
    assert "Compute frontier" in session.message  # no grid yet: said, nothing breaks
    session.message = ""
    session.start_grid()
    engine.wait_grid(120)
    session.follow_matching_grid()
    order = grid_order(session)
    assert len(order) >= 2
    xs = [session.results["mean"].values[m][0] for m in order]
    assert xs == sorted(xs)
    step_grid_point(session, +1)
    assert session.grid_point == order[0]
    step_grid_point(session, +1)
    assert session.grid_point == order[1]
    step_grid_point(session, -1)
    step_grid_point(session, -1)  # stops at the left end
    assert session.grid_point == order[0]
    session._worker and session._worker.join(60)


# ----------------------------------------------------------------------------------------------
# the comparison as Markdown and CSV


def test_the_comparison_csv_holds_every_pin_exactly():
    pins = [
        pin({"a": 0.25, "b": 0.75}, 'Hello, "world"\nsecond line', measured={"concise": 4.5}),
        pin({"a": 1.0, "b": 0.0}, '=HYPERLINK("http://x")', temperature=0.7, seed=2),
    ]
    pins[1]["partial"] = True
    rows = list(csv.DictReader(io.StringIO(comparison_csv(pins, reference=1))))
    assert [r["pin"] for r in rows] == ["1", "2"] and rows[1]["reference"] == "yes"
    assert rows[0]["response"] == 'Hello, "world"\nsecond line'
    assert rows[1]["response"] == '\'=HYPERLINK("http://x")'  # a spreadsheet shows it, never runs it
    assert float(rows[0]["w_b"]) == 0.75 and rows[0]["mix"] == "a=0.25, b=0.75"
    assert float(rows[0]["grid_mean_concise"]) == 4.5 and rows[1]["grid_mean_concise"] == ""
    assert float(rows[1]["temperature"]) == 0.7 and rows[1]["seed"] == "2" and rows[1]["partial"] == "yes"
    assert float(rows[0]["score_letters"]) == 0.5 and rows[0]["prompt"] == "Say hi."
    assert comparison_csv([]) == ""


def test_the_comparison_markdown_shows_scores_and_whole_responses():
    pins = [
        pin({"a": 0.5, "b": 0.5}, "Use ``` fences | and pipes", scores={"concise": 5.0, "letters": math.nan}),
        pin({"a": 0.0, "b": 1.0}, "Short.", prompt="Other | prompt"),
    ]
    text = comparison_markdown(pins, reference=0)
    assert "| 1 (reference) | a=0.5, b=0.5 | soup | 6 | 0 | 1 | 0 | 5 | n/a |" in text
    assert "Other \\| prompt" not in text.split("## Pin")[0]  # the table holds no prompt
    assert "````text\nUse ``` fences | and pipes\n````" in text  # a fence longer than the text's
    assert "```text\nShort.\n```" in text and "```text\nOther | prompt\n```" in text
    assert comparison_rows(pins)[1]["mix"] == "a=0, b=1"
    assert "No mix is pinned" in comparison_markdown([])
