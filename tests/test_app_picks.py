"""The app's picks without a browser: "compare these next" pins two grid mixes and generates their
responses, a pick is saved and survives a reload, the recommendation loads onto the sliders."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
import yaml

from explorer.app.picks_state import PickBoard
from explorer.picks import load_picks
from tests.test_app_choose import synthetic_front


@pytest.fixture
def board(session, tmp_path):
    session.results = synthetic_front()
    b = PickBoard(session=session, path=tmp_path / "picks.jsonl")
    yield b
    b.close()


def wait_pins(session) -> None:
    for _ in range(600):
        if not session.refreshing_pins:
            return
        time.sleep(0.1)
    raise AssertionError("the pinned responses never finished")


def test_no_picks_no_recommendation_but_a_pair_to_compare(board):
    assert board.learned is not None and board.learned.choice is None
    assert "no picks yet" in board.problem
    assert "pin two mixes" in board.can_judge()
    board.judge("a")
    assert board.picks == [] and "pin two mixes" in board.session.message


def test_compare_next_then_judge_then_reload(board, session, tmp_path):
    pair = board.learned.next_pair
    board.compare_next()
    wait_pins(session)
    assert [p["weights"] for p in session.pinned] == [pair[0], pair[1]]
    assert all(p["response"] and not p["partial"] for p in session.pinned)
    assert all(p["measured"] for p in session.pinned)  # grid mixes: drawn on their points
    assert (board.a, board.b) == (0, 1) and board.can_judge() == ""

    board.judge("b")
    saved = load_picks(tmp_path / "picks.jsonl")
    assert len(saved) == 1 and saved[0].winner == "b" and saved[0].a == pair[0] and saved[0].b == pair[1]
    assert saved[0].prompt == session.prompt and saved[0].decoding["max_new_tokens"] == 6
    learned = board.learned
    assert learned.choice is not None and learned.picks == 1

    again = PickBoard(session=session, path=tmp_path / "picks.jsonl")  # a reload
    assert again.picks == board.picks and again.learned.lam == learned.lam
    again.close()

    board.load()
    assert session.weights == learned.choice.weights
    assert session.choice["method"] == "picks" and set(session.choice["lambda"]) == {"concise", "letters"}
    session.export(wait=True)  # the recipe carries the picks' summary under choice:
    with zipfile.ZipFile(io.BytesIO(open(session.export_zip, "rb").read())) as zf:
        recipe = yaml.safe_load(zf.read(next(n for n in zf.namelist() if n.endswith("recipe.yaml"))))
    choice = recipe["choice"]
    assert choice["method"] == "picks" and choice["picks"] == 1 and len(choice["next_pair"]) == 2
    assert choice["lambda"] == pytest.approx(learned.lam) and set(choice["lambda_ci"]) == {
        "concise",
        "letters",
    }

    board.remove(0)
    assert board.picks == [] and load_picks(tmp_path / "picks.jsonl") == []
    assert board.learned.choice is None


def test_a_pair_that_answers_different_prompts_is_not_judged(board, session):
    board.compare_next()
    wait_pins(session)
    session.pinned = [session.pinned[0], {**session.pinned[1], "prompt": "another prompt"}]
    assert "different prompts" in board.can_judge()
    board.a = board.b = 0
    assert "two different" in board.can_judge()


def test_a_damaged_picks_file_is_left_alone_and_said(session, tmp_path):
    session.results = synthetic_front()
    path = tmp_path / "picks.jsonl"
    path.write_text('{"a": {"helpful": 1}, "b": {"concise": 1}, "winner": "a"}\n{oops\n')
    b = PickBoard(session=session, path=path)
    assert b.path is None and b.picks == []
    assert "line 2: not JSON" in session.message and "left as it is" in session.message
    assert "{oops" in path.read_text()  # nothing lost
    b.close()


def test_the_picks_file_lines_are_the_documented_format(board, session, tmp_path):
    board.compare_next()
    wait_pins(session)
    board.judge("tie")
    line = json.loads((tmp_path / "picks.jsonl").read_text().splitlines()[0])
    assert {"a", "b", "winner", "prompt", "decoding", "time"} <= set(line) and line["winner"] == "tie"


def test_a_and_b_follow_their_pins_when_one_is_unpinned(board, session):
    board.compare_next()
    wait_pins(session)
    first, second = (dict(p["weights"]) for p in session.pinned)
    session.load_mix(3)
    session.regenerate(wait=True)
    session.pin()  # a third column: (first, second, third)
    board.param.update(a=1, b=2)
    third = dict(session.pinned[2]["weights"])
    session.unpin(0)
    assert (board.a, board.b) == (0, 1)  # the same two pins, one column to the left
    board.judge("a")
    assert board.picks[-1].a == second and board.picks[-1].b == third
    session.unpin(0)  # A's pin is gone: nothing is judged until A is chosen again
    assert (board.a, board.b) == (-1, 0)
    session.load_mix(0)
    session.regenerate(wait=True)
    session.pin()  # two pins again, A still unset
    assert "two different" in board.can_judge()
    assert first != second


def test_remove_keeps_picks_another_tab_added(board, session, tmp_path):
    board.compare_next()
    wait_pins(session)
    board.judge("a")
    other = PickBoard(session=session, path=tmp_path / "picks.jsonl")  # a second tab of the browser
    other.judge("b")
    board.judge("tie")  # this tab now sees the other tab's pick too
    assert [p.winner for p in board.picks] == ["a", "b", "tie"]
    board.remove(0)
    assert [p.winner for p in load_picks(tmp_path / "picks.jsonl")] == ["b", "tie"]
    other.close()


def test_the_choose_bounds_apply_to_the_recommendation(session, tmp_path):
    from explorer.app.choose_state import Chooser

    session.results = synthetic_front()
    chooser = Chooser(session=session)
    board = PickBoard(session=session, chooser=chooser, path=None)
    board.compare_next()
    wait_pins(session)
    board.judge("b")  # mixes 0 vs 4: 4 (most letters) wins; letters are worth more than words
    unbounded = board.learned.choice
    assert unbounded.scores["concise"] > 35
    chooser.set_limit("concise", 35)  # at most 35 words
    assert board.learned.choice.index != unbounded.index and board.learned.choice.scores["concise"] <= 35
    board.close()
    chooser.close()
