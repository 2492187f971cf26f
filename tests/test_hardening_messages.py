"""Issue 25, tracebacks and misleading messages of the command line: each probe ends in one line that
names the real cause and what to do, exit code 2 (argparse's own refusals exit 2 too)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from explorer.cli import main
from explorer.decoding import SamplingConfig
from explorer.errors import SoupError
from tests import test_hardening
from tests.test_hardening import cached_files

soup_files, grid_argv = test_hardening.soup_files, test_hardening.grid_argv  # the same fixtures


def last_line(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["serve", "api"])
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_refused_by_the_parser(capsys, command, port):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--port", port])
    assert exit_.value.code == 2
    assert "a port is a whole number from 1 to 65535" in capsys.readouterr().err


def test_a_port_in_use_says_so_without_a_disk_hint(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["api", "--port", str(port)]) == 2
    line = last_line(capsys.readouterr().err)
    assert f"port {port} on 127.0.0.1 is not free" in line and "--port" in line and "space" not in line


def test_max_new_tokens_beyond_the_context_is_blamed_on_max_new_tokens(grid_argv, tmp_path, capsys):
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
    argv[argv.index("--max-new-tokens") + 1] = "1000000000"
    assert main(argv) == 2
    line = last_line(capsys.readouterr().err)
    assert "--max-new-tokens 1000000000 is more than the model's context of 128 tokens" in line
    assert "prompt 1" not in line and cached_files(tmp_path) == []


@pytest.mark.parametrize(
    "flag, value", [("--temperature", "inf"), ("--temperature", "nan"), ("--top-p", "nan")]
)
def test_a_temperature_of_inf_is_refused_before_anything_loads(grid_argv, tmp_path, capsys, flag, value):
    out = tmp_path / "a.nc"
    assert main([*grid_argv, "--objective", "readable", flag, value, "--out", str(out)]) == 2
    assert "finite" in last_line(capsys.readouterr().err) and not out.exists()
    with pytest.raises(SoupError, match="finite"):
        SamplingConfig(
            4, float(value) if flag == "--temperature" else 0.5, float(value) if flag == "--top-p" else 1.0
        )


def test_an_adaptive_budget_below_the_first_lattice_is_refused_before_loading(grid_argv, tmp_path, capsys):
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
    argv[argv.index("--resolution") + 1] = "2"  # 6 lattice mixes of 3 adapters and the centre
    assert main([*argv, "--adaptive", "--budget", "2"]) == 2
    err = capsys.readouterr().err
    assert "a budget of 2 mixes does not cover the 7 of the first lattice" in last_line(err)
    assert "2 in all" not in err and "rows on" not in err  # refused before the model loads


def test_a_huge_adaptive_budget_is_advised_to_lower_the_budget(grid_argv, tmp_path, capsys):
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
    assert main([*argv, "--adaptive", "--budget", "1000000000"]) == 2
    line = last_line(capsys.readouterr().err)
    assert "lower --budget" in line and "--resolution" not in line


def test_pick_takes_an_aspiration_level_beyond_the_weight_limit(tmp_path, capsys):
    from explorer.frontier.results import save_results
    from tests.test_choose import MAX, MIN, TWO, TWO_HIGH, TWO_LOW, T, results_dataset

    scale = np.array([1.0, 1000.0])  # concise in tens of thousands of words: levels beyond 1e4
    ds = results_dataset(
        TWO * scale,
        TWO_LOW * scale,
        TWO_HIGH * scale,
        np.stack([1 - T, T], axis=1),
        ["positive", "concise"],
        [MAX, MIN],
    )
    path = save_results(ds, tmp_path / "front.nc")
    argv = ["pick", "--frontier", str(path), "--prefer", "positive=1,concise=1"]
    assert main([*argv, "--aspiration", "concise=20000"]) == 0, capsys.readouterr().err
    assert "mix weight" not in capsys.readouterr().err
    assert main([*argv, "--aspiration", "concise=inf"]) == 2
    assert "finite" in last_line(capsys.readouterr().err)


def test_the_budget_line_counts_the_centre_mix_the_grid_adds(soup_files, tmp_path, capsys, monkeypatch):
    from explorer.frontier.grid import count_mixes, weight_grid

    for n, k in [(2, 1), (3, 2), (3, 3), (4, 2)]:
        assert count_mixes(n, k) == len(weight_grid([f"a{i}" for i in range(n)], k))
    base, adapters = soup_files
    prompts = tmp_path / "many.txt"
    prompts.write_text("".join(f"Question {i}?\n" for i in range(40_000)))
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["grid", "--base", str(base), *(f"--adapter={n}={p}" for n, p in list(adapters.items())[:2])]
    argv += ["--objective", "concise", "--objective", "readable", "--prompts", str(prompts)]
    assert main([*argv, "--resolution", "1", "--out", str(tmp_path / "a.nc")]) == 2
    err = capsys.readouterr().err
    assert "budget: 3 mixes x 40,000 prompts" in err and "120,000 rows is more than 100,000" in err
