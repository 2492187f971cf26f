"""``explorer grid`` end to end on a tiny soup, and its checks before any generation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from explorer.cli import main
from explorer.frontier.grid import weight_grid
from explorer.frontier.results import load_results


@pytest.fixture
def grid_argv(llama_files, tmp_path):
    base, adapters = llama_files
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\n\n# a comment\nWrite a story\n")
    argv = [
        "grid",
        "--base",
        str(base),
        "--device",
        "cpu",
        "--dtype",
        "float64",
        "--prompts",
        str(prompts),
        "--resolution",
        "2",
        "--max-new-tokens",
        "6",
        "--objective",
        "concise",
        "--objective",
        "readable",
    ]
    return argv + [f"--adapter={n}={p}" for n, p in adapters.items()]


def test_grid_writes_results_and_prints_a_summary(grid_argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "front.nc"
    assert main([*grid_argv, "--out", str(out), "--point", "helpful=2,concise=-1"]) == 0
    ds = load_results(out)
    assert ds.sizes["mix"] == 7 + 1 and ds.sizes["prompt"] == 2
    assert ds["weights"].values[-1].tolist() == [2.0, -1.0, 0.0]
    printed = capsys.readouterr().out
    assert "concise (min)" in printed and "readable (max)" in printed and "*" in printed
    assert f"wrote {out}" in printed
    assert list((tmp_path / "cache" / "frontiers").glob("*.nc"))  # cached for the next run


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--resolution", "0"], "--resolution must be at least 1"),
        (["--objective", "concise"], "objectives ['concise'] are named twice"),
        (["--objective", "funny"], "unknown objective 'funny'"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_grid_options_fail_before_loading(grid_argv, tmp_path, capsys, monkeypatch, extra, words):
    import explorer.cli.grid

    monkeypatch.setattr(explorer.cli.grid, "open_soup", lambda *a: pytest.fail("loaded the model"))
    assert main([*grid_argv, "--out", str(tmp_path / "f.nc"), *extra]) == 2
    assert words in capsys.readouterr().err


def test_a_single_objective_fails_before_loading(grid_argv, tmp_path, capsys):
    i = grid_argv.index("--objective")
    argv = grid_argv[:i] + grid_argv[i + 4 :] + ["--objective", "concise", "--out", str(tmp_path / "f.nc")]
    assert main(argv) == 2
    assert "at least 2 objectives" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "holds no prompts"),
        (b"\n# only\n", "holds no prompts"),
        (b"\x00\x01\x02", "binary, not text"),
        (b"\xff\xfe\xfa", "not UTF-8"),
    ],
)
def test_bad_prompt_files(grid_argv, tmp_path, capsys, content, words):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    argv = [*grid_argv, "--out", str(tmp_path / "f.nc")]
    argv[argv.index("--prompts") + 1] = str(bad)
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_unwritable_output(grid_argv, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    target = "/proc/f.nc" if os.geteuid() == 0 else str(locked / "f.nc")  # root may write anywhere but /proc
    assert main([*grid_argv, "--out", target]) == 2
    assert "cannot write in" in capsys.readouterr().err


def test_output_in_a_missing_folder_or_a_folder(grid_argv, tmp_path, capsys):
    assert main([*grid_argv, "--out", str(tmp_path / "nope" / "f.nc")]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert main([*grid_argv, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_adaptive_grid_refines_in_rounds_into_one_results_file(grid_argv, tmp_path, capsys, monkeypatch):
    import explorer.frontier.evaluation

    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "front.nc"
    argv = [*grid_argv, "--out", str(out), "--adaptive", "--budget", "10", "--round-size", "2"]
    assert main(argv) == 0  # --resolution 2: the lattice's 6 mixes and the centre first, then rounds
    ds = load_results(out)
    weights = ds["weights"].values
    assert ds.sizes["mix"] == 10 and ds.sizes["prompt"] == 2
    assert weights[:7].tolist() == weight_grid(["helpful", "concise", "positive"], 2).tolist()
    assert len(np.unique(weights, axis=0)) == 10  # no mix twice
    for m in range(7, 10):  # each new mix lies halfway between two mixes measured before it
        halves = (weights[:m, None] + weights[None, :m]) / 2
        assert np.isclose(halves, weights[m]).all(axis=2).any()
    rounds = json.loads(ds.attrs["adaptive"])["rounds"]
    assert [r["evaluated"] for r in rounds] == [7, 9, 10]  # the last round: what the budget leaves
    assert np.isfinite(ds["mean"].values).all() and ds["pareto"].values.any()
    err = capsys.readouterr().err
    assert "lattice: 7 mixes" in err and "round 2: +1 mix, 10 in all" in err
    assert len(list((tmp_path / "cache" / "frontiers").glob("*.nc"))) == 3  # each round cached
    # a rerun reads every round back from the cache: nothing is generated
    monkeypatch.setattr(
        explorer.frontier.evaluation, "generate", lambda *a, **k: pytest.fail("generated again")
    )
    again = tmp_path / "again.nc"
    assert main([*argv[: argv.index("--out")], "--out", str(again), *argv[argv.index("--out") + 2 :]]) == 0
    assert load_results(again)["weights"].values.tolist() == weights.tolist()
    assert np.array_equal(load_results(again)["mean"].values, ds["mean"].values)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--budget", "10"], "--budget only apply to an adaptive grid: add --adaptive"),
        (["--adaptive"], "an adaptive grid needs --budget M"),
        (["--adaptive", "--budget", "0"], "--budget must be at least 1 mix"),
        (["--adaptive", "--budget", "9", "--round-size", "0"], "--round-size must be at least 1 mix"),
    ],
)
def test_bad_adaptive_options_fail_before_loading(grid_argv, tmp_path, capsys, monkeypatch, extra, words):
    import explorer.cli.grid

    monkeypatch.setattr(explorer.cli.grid, "open_soup", lambda *a: pytest.fail("loaded the model"))
    assert main([*grid_argv, "--out", str(tmp_path / "f.nc"), *extra]) == 2
    assert words in capsys.readouterr().err


def test_a_budget_below_the_lattice_fails_before_generating(grid_argv, tmp_path, capsys, monkeypatch):
    import explorer.frontier.evaluation

    monkeypatch.setattr(explorer.frontier.evaluation, "generate", lambda *a, **k: pytest.fail("generated"))
    assert main([*grid_argv, "--out", str(tmp_path / "f.nc"), "--adaptive", "--budget", "5"]) == 2
    assert "a budget of 5 mixes does not cover the 7 of the first lattice" in capsys.readouterr().err


def test_a_big_grid_is_refused_before_loading_without_yes(grid_argv, tmp_path, capsys, monkeypatch):
    import explorer.cli.grid

    monkeypatch.setattr(explorer.cli.grid, "open_soup", lambda *a: pytest.fail("loaded the model"))
    monkeypatch.setattr(explorer.cli.grid, "weight_grid", lambda *a, **k: pytest.fail("made the lattice"))
    out = tmp_path / "f.nc"
    argv = [*grid_argv, "--out", str(out)]
    argv[argv.index("--resolution") + 1] = "1000"  # 3 adapters: 501,502 mixes (the centre too) x 2 prompts
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "budget: 501,502 mixes x 2 prompts x 1 samples = 1,003,004 rows" in err
    assert "at most 6,018,024 new tokens" in err and "assumed 100 tokens/s on cpu" in err
    assert "1,003,004 rows is more than 100,000" in err and "pass --yes" in err
    assert not list(tmp_path.iterdir())[1:] and not out.exists()  # only prompts.txt: nothing written


def test_an_adaptive_budget_counts_its_mixes_and_its_first_lattice(grid_argv, tmp_path, capsys, monkeypatch):
    import explorer.cli.grid

    monkeypatch.setattr(explorer.cli.grid, "open_soup", lambda *a: pytest.fail("loaded the model"))
    out = tmp_path / "f.nc"
    argv = [*grid_argv, "--out", str(out), "--adaptive", "--budget", "60000"]  # 60,000 mixes x 2 prompts
    assert main(argv) == 2
    assert "120,000 rows is more than 100,000" in capsys.readouterr().err
    argv[argv.index("--resolution") + 1] = "400"  # a first lattice of 80,602 mixes, above a budget of 7
    argv[argv.index("--budget") + 1] = "7"
    assert main(argv) == 2
    assert "161,204 rows is more than 100,000" in capsys.readouterr().err
    assert not out.exists()


def test_a_small_grid_prints_its_budget_and_yes_runs_a_big_one(grid_argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "front.nc"
    assert main([*grid_argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "budget: 7 mixes x 2 prompts x 1 samples = 14 rows, at most 84 new tokens, about 1 s" in err
    assert err.index("budget:") < err.index("grid")  # before the progress bar
    out.unlink()  # the same 14 rows, now above a threshold of 10
    monkeypatch.setattr("explorer.cli.grid.check_budget", _check_budget_with_limit(10))
    assert main([*grid_argv, "--out", str(out)]) == 2
    assert "14 rows is more than 10 (about 1 s): pass --yes" in capsys.readouterr().err and not out.exists()
    assert main([*grid_argv, "--out", str(out), "--yes"]) == 0
    assert load_results(out).sizes["mix"] == 7


def _check_budget_with_limit(limit):
    from explorer.frontier.grid import check_budget

    return lambda budget, *, confirmed, **kw: check_budget(budget, confirmed=confirmed, limit=limit, **kw)
