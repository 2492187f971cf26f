"""Issue 25, names and loaders: a name is checked once where options are read (items 1, 7 and the
names probes), and every file this project reads goes through one loader whose every refusal is
one line naming the file (item 9's alias bomb, the BOM, choice and recipe probes, the journal and
the cached .nc). Each test: the refusal or the message, exit code 2, and nothing lost."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import yaml

from explorer.cli import main
from explorer.config import read_config
from explorer.errors import SoupError
from explorer.names import check_name
from explorer.prompts import parse_prompts, read_prompts
from tests import test_hardening
from tests.test_hardening import MIX, model_args

soup_files, grid_argv = test_hardening.soup_files, test_hardening.grid_argv  # the same fixtures


def one_line_error(err: str) -> str:
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in err
    return last


# ------------------------------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    "name, words",
    [
        ("team/helpful", "holds '/'"),
        ("<img src=x onerror=alert(1)>", "holds"),
        ("c$(touch${IFS}/tmp/x)", "holds"),
        ("a,b", "holds ','"),
        ("yes", "YAML boolean or null"),
        ("null", "YAML boolean or null"),
        ('""', "holds '\"'"),
        ("-rf", "must start with"),
    ],
)
def test_an_unsafe_adapter_name_is_refused_before_anything_loads(soup_files, tmp_path, capsys, name, words):
    base, adapters = soup_files
    out = tmp_path / "mix"
    argv = ["export", "--base", str(base), f"--adapter={name}={adapters['helpful']}", f"--weights={name}=1"]
    assert main([*argv, "--out", str(out)]) == 2
    assert words in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["base", *adapters])  # nothing written


@pytest.mark.parametrize("key", ["yes", "null", '""', "'a,b'", "team/helpful"])
def test_a_config_with_an_unsafe_adapter_name_is_refused(tmp_path, key):
    config = tmp_path / "c.yaml"
    config.write_text(f"adapters:\n  {key}: ./a\n  concise: ./b\n")
    with pytest.raises(SoupError, match="adapter name"):
        read_config(config)


def test_nfc_and_nfd_twins_are_one_name(soup_files, capsys):
    base, adapters = soup_files
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd and check_name(nfd) == nfc
    argv = ["generate", "--base", str(base), f"--adapter={nfc}={adapters['helpful']}"]
    argv += [f"--adapter={nfd}={adapters['concise']}", "--weights", f"{nfc}=1"]
    assert main(argv) == 2
    assert "given twice" in one_line_error(capsys.readouterr().err)


def test_a_name_with_letters_digits_dots_and_dashes_is_kept():
    assert check_name("concise_v2.1-b") == "concise_v2.1-b" and check_name("héllo") == "héllo"


# ------------------------------------------------------------------------------------------------
# config files


def test_a_config_with_a_duplicate_adapter_key_is_refused(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("adapters:\n  positive: ./positive\n  positive: ./concise\n")
    assert main(["generate", "--config", str(config), "--weights", "positive=1"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(config) in line and "'positive' is given twice" in line


def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path, capsys):
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(rows) + "\n")  # about 400 bytes, 10^9 strings once expanded
    assert config.stat().st_size < 600
    assert main(["generate", "--config", str(config), "--weights", "positive=1"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(config) in line and "aliases" in line


def test_a_deeply_nested_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "deep.yaml"
    config.write_text("a: " + "[" * 200_000 + "]" * 200_000 + "\n")
    assert main(["generate", "--config", str(config), "--weights", "positive=1"]) == 2
    assert str(config) in one_line_error(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------
# prompt files, choices, recipes


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_bytes("\ufeffWhy is the sky blue?\nWrite a story\n".encode())
    assert read_prompts(prompts) == ["Why is the sky blue?", "Write a story"]
    uploaded = prompts.read_bytes().decode("utf-8", "replace")  # as the app decodes an upload
    assert parse_prompts(uploaded) == ["Why is the sky blue?", "Write a story"]


@pytest.mark.parametrize(
    "weights", [{"helpful": True, "concise": False}, {"helpful": "1"}, {"helpful": None}]
)
def test_a_choice_with_weights_that_are_not_numbers_is_refused(soup_files, tmp_path, capsys, weights):
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"weights": weights, "rule": "max"}))
    out = tmp_path / "mix"
    assert main(["export", *model_args(*soup_files), "--choice", str(choice), "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(choice) in line and "not a number" in line and not out.exists()


@pytest.fixture
def recipe_file(soup_files, tmp_path) -> Path:
    out = tmp_path / "mix"
    assert main(["export", *model_args(*soup_files), "--weights", MIX, "--out", str(out)]) == 0
    return out / "recipe.yaml"


def edit_recipe(file: Path, change) -> None:
    data = yaml.safe_load(file.read_text())
    change(data)
    file.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda r: r["adapters"]["helpful"].pop("files_sha256"), "adapter 'helpful' has no files_sha256"),
        (lambda r: r["base"].pop("files_sha256"), "base model has no files_sha256"),
        (lambda r: r.update(format="lowrank", rank="eight"), "--rank must be a whole number"),
        (lambda r: r.update(format="lowrank", rank=1_000_000_000), "above the full rank"),
    ],
)
def test_an_edited_recipe_is_refused_in_one_line(recipe_file, tmp_path, capsys, change, words):
    edit_recipe(recipe_file, change)
    again = tmp_path / "again"
    assert main(["export", "--recipe", str(recipe_file), "--out", str(again)]) == 2
    assert words in one_line_error(capsys.readouterr().err)
    assert not again.exists()


def test_a_lowrank_export_at_or_above_the_full_rank_says_so(soup_files, tmp_path, capsys):
    out = tmp_path / "mix"
    argv = ["export", *model_args(*soup_files), "--weights", MIX, "--format", "lowrank", "--rank", "100000"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "above the full rank" in one_line_error(capsys.readouterr().err) and not out.exists()


# ------------------------------------------------------------------------------------------------
# the journal and the cached results


@pytest.mark.parametrize(
    "line",
    [
        '{"rows": [[0, 0, 0]], "texts": [{"a": 1}], "n_tokens": [1], "finished": [true], "scores": [[1, 2]]}',
        "[" * 200_000 + "]" * 200_000,
    ],
)
def test_a_poisoned_journal_line_is_skipped_and_the_rerun_completes(grid_argv, tmp_path, line):
    from explorer.frontier.results import load_results

    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc"), "--force", "--no-cache"]
    assert main(argv) == 0
    reference = load_results(tmp_path / "a.nc")
    argv.remove("--no-cache")
    assert main(argv) == 0
    (final,) = (tmp_path / "cache" / "frontiers").glob("*.nc")
    journal = final.with_name(final.name.replace(".nc", ".partial.jsonl"))
    final.unlink()
    journal.write_text(line + "\n")
    with pytest.warns(RuntimeWarning, match="damaged line"):
        assert main(argv) == 0
    assert main(argv) == 0  # and again: nothing poisons the next run
    assert (load_results(tmp_path / "a.nc")["text"] == reference["text"]).all()


def test_a_cached_front_with_wrong_dimensions_is_moved_aside_and_computed_again(grid_argv, tmp_path):
    import xarray as xr

    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc"), "--force"]
    assert main(argv) == 0
    (cached,) = (tmp_path / "cache" / "frontiers").glob("*.nc")
    ds = xr.load_dataset(cached)
    ds.isel(prompt=[0]).to_netcdf(cached)  # one prompt where the grid has two
    with pytest.warns(RuntimeWarning, match="moved aside"):
        assert main(argv) == 0
    assert main(argv) == 0
    names = sorted(p.name for p in cached.parent.iterdir())
    assert cached.name in names and any(".corrupt-" in n for n in names)
    assert xr.load_dataset(tmp_path / "a.nc").sizes["prompt"] == 2


@pytest.mark.parametrize("kind", ["truncated", "pipe", "text"])
def test_a_damaged_results_file_is_one_line_naming_it(grid_argv, tmp_path, capsys, kind):
    import os

    from explorer.frontier.results import load_results

    front = tmp_path / "front.nc"
    if kind == "truncated":
        assert main([*grid_argv, "--objective", "readable", "--out", str(front)]) == 0
        front.write_bytes(front.read_bytes()[:2000])
    elif kind == "pipe":
        os.mkfifo(front)  # reading it would wait forever
    else:
        front.write_text("not a netCDF file")
    with pytest.raises(SoupError, match=f"{front}"):
        load_results(front)
    assert main(["pick", "--frontier", str(front), "--knee"]) == 2
    assert str(front) in one_line_error(capsys.readouterr().err)
