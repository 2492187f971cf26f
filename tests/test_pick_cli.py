"""``explorer pick`` on a results file worked out by hand (the fronts of tests/test_choose.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.results import save_results
from tests.test_choose import MAX, MIN, TWO, TWO_HIGH, TWO_LOW, T, results_dataset


@pytest.fixture
def front(tmp_path):
    """Two adapters, positive (maximized) and concise (words, minimized); see tests/test_choose.py."""
    weights = np.stack([1 - T, T], axis=1)
    ds = results_dataset(TWO, TWO_LOW, TWO_HIGH, weights, ["positive", "concise"], [MAX, MIN])
    return save_results(ds, tmp_path / "front.nc")


def test_constraint_pick_prints_the_mix_and_writes_json(front, tmp_path, capsys):
    out = tmp_path / "choice.json"
    argv = ["pick", "--frontier", str(front), "--maximize", "positive", "--where", "concise<=35"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rule: maximize positive where concise<=35 (bounds on the means)" in printed
    assert "mix 2: positive=0.5, concise=0.5" in printed
    assert "positive  0.7  [0.65, 0.75]  (higher is better)" in printed
    assert "concise   30  [26, 36]  (lower is better)" in printed
    assert "tied under this rule with mixes 8" in printed
    assert f"explorer export --weights positive=0.5,concise=0.5 --frontier {front}" in printed
    saved = json.loads(out.read_text())
    assert saved["method"] == "constraint" and saved["index"] == 2 and saved["frontier"] == str(front)
    assert saved["weights"] == {"positive": 0.5, "concise": 0.5}
    assert saved["intervals"]["concise"] == [26.0, 36.0]
    # on the whole interval (conservative) row 2 reaches 36 words: row 3 is chosen
    assert main([*argv, "--bound", "ci"]) == 0
    assert "mix 3: positive=0.25, concise=0.75" in capsys.readouterr().out


def test_preference_and_knee(front, capsys):
    assert main(["pick", "--frontier", str(front), "--prefer", "positive=3,concise=1"]) == 0
    printed = capsys.readouterr().out
    assert (
        "mix 1: positive=0.75, concise=0.25" in printed
        and "preferences positive=0.75, concise=0.25" in printed
    )
    assert main(["pick", "--frontier", str(front), "--knee"]) == 0
    printed = capsys.readouterr().out
    assert "mix 2: " in printed and "knee of the front" in printed
    assert main(["pick", "--frontier", str(front), "--knee", "--where", "concise<=29"]) == 0
    assert "mix 3: " in capsys.readouterr().out  # the knee of what the bound leaves


def test_no_feasible_mix_exits_2_with_the_reason(front, tmp_path, capsys):
    out = tmp_path / "choice.json"
    argv = ["pick", "--frontier", str(front), "--maximize", "positive", "--out", str(out)]
    assert main([*argv, "--where", "concise<=28", "--where", "positive>=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: no measured mix meets maximize positive where concise<=28 and positive>=0.5"
    )
    assert "concise<=28 excludes 5, positive>=0.5 excludes 3" in err and "Closest: mix 2" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--maximize", "positive", "--where", "concise=<40"], "operator '=<' is not one of"),
        (["--maximize", "positive", "--where", "concise"], "has no comparison"),
        (["--prefer", "positive=lots"], "--prefer positive='lots': the weight must be a number"),
        (["--prefer", "positive=-1"], "preference weight for 'positive' must be a finite number >= 0"),
        (["--maximize", "postive"], "no objective 'postive' (did you mean 'positive'?)"),
        (["--maximize", "positive", "--where", "readable>=60"], "no objective 'readable'"),
    ],
)
def test_bad_rules(front, capsys, extra, words):
    assert main(["pick", "--frontier", str(front), *extra]) == 2
    assert words in capsys.readouterr().err


def test_bad_files(tmp_path, capsys):
    missing = tmp_path / "missing.nc"
    assert main(["pick", "--frontier", str(missing), "--knee"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the constraint's syntax is checked before the file is read
    assert main(["pick", "--frontier", str(missing), "--knee", "--where", "concise<<4"]) == 2
    assert "2 comparisons" in capsys.readouterr().err


def test_one_rule_and_no_model_options(front, capsys):
    with pytest.raises(SystemExit):
        main(["pick", "--frontier", str(front), "--knee", "--maximize", "positive"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pick", "--frontier", str(front)])
    with pytest.raises(SystemExit):
        main(["pick", "--frontier", str(front), "--knee", "--base", "./model"])
    assert "unrecognized arguments: --base" in capsys.readouterr().err
