"""``explorer pick`` on a results file worked out by hand (the fronts of tests/test_choose.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from explorer.cli import main
from explorer.frontier.results import save_results
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
    argv = ["pick", "--frontier", str(front), "--prefer", "positive=1,concise=1"]
    assert main([*argv, "--aspiration", "positive=0.9,concise=60"]) == 0  # 60 words are enough
    printed = capsys.readouterr().out
    assert (
        "mix 1: positive=0.75, concise=0.25" in printed and "aspiration positive=0.9, concise=60" in printed
    )
    assert main(["pick", "--frontier", str(front), "--knee", "--aspiration", "concise=60"]) == 2
    assert "--aspiration goes with --prefer" in capsys.readouterr().err
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


def test_grid_pick_export_on_a_tiny_soup(llama_files, tmp_path, capsys, monkeypatch):
    """The whole path: a grid, a choice written as JSON, an export whose recipe records the choice."""
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    base, adapters = llama_files
    model = ["--base", str(base), "--device", "cpu", "--dtype", "float64"]
    model += [f"--adapter={n}={p}" for n, p in adapters.items()]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\nWrite a story\n")
    front, choice = tmp_path / "front.nc", tmp_path / "choice.json"
    grid = ["grid", *model, "--prompts", str(prompts), "--resolution", "2", "--max-new-tokens", "6"]
    assert main([*grid, "--objective", "concise", "--objective", "readable", "--out", str(front)]) == 0
    assert main(["pick", "--frontier", str(front), "--knee", "--out", str(choice)]) == 0
    chosen = json.loads(choice.read_text())
    capsys.readouterr()
    out = tmp_path / "mix"
    assert main(["export", *model, "--choice", str(choice), "--frontier", str(front), "--out", str(out)]) == 0
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert recipe["weights"] == chosen["weights"]
    assert recipe["choice"]["rule"] == chosen["rule"] and recipe["choice"]["method"] == "knee"
    assert recipe["scores"]["concise"]["mean"] == pytest.approx(chosen["scores"]["concise"])
    # the recipe reproduces the export, choice included
    again = tmp_path / "again"
    assert main(["export", "--recipe", str(out / "recipe.yaml"), "--out", str(again)]) == 0
    assert yaml.safe_load((again / "recipe.yaml").read_text())["choice"] == recipe["choice"]


def test_export_takes_one_mix(llama_files, tmp_path, capsys):
    base, adapters = llama_files
    model = ["--base", str(base), *[f"--adapter={n}={p}" for n, p in adapters.items()]]
    bad = tmp_path / "choice.json"
    bad.write_text('{"weights": "helpful=1"}')
    for extra, words in [
        (["--weights", "helpful=1", "--choice", str(bad)], "one of them"),
        ([], "give the mix with --weights NAME=W,... or --choice FILE.json"),
        (["--choice", str(bad)], "is not a choice written by explorer pick --out"),
        (["--choice", str(tmp_path / "missing.json")], "missing.json does not exist"),
    ]:
        assert main(["export", *model, "--out", str(tmp_path / "x"), *extra]) == 2
        assert words in capsys.readouterr().err


def test_the_printed_export_command_quotes_names_from_the_file(tmp_path, capsys):
    """Issue 25, item 5: an adapter named c$(touch${IFS}/tmp/x) is printed as one quoted shell word."""
    import shlex

    weights = np.stack([1 - T, T], axis=1)
    evil = "c$(touch${IFS}/tmp/x)"
    ds = results_dataset(TWO, TWO_LOW, TWO_HIGH, weights, ["positive", "concise"], [MAX, MIN])
    ds = ds.assign_coords(adapter=["p", evil])
    front = save_results(ds, tmp_path / "front.nc")
    assert main(["pick", "--frontier", str(front), "--maximize", "positive"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("export it:"))
    words = shlex.split(line.removeprefix("export it: "))
    assert words[:3] == ["explorer", "export", "--weights"] and evil in words[3]
    assert words[4:6] == ["--frontier", str(front)]
