"""Issue 25, outputs: one "replace only what we wrote" rule (items 2 and 6, the device node, the
leftover tmp link, ``--out .``), one writer per target, and a full disk that ends in one line
with the earlier output kept (the export's SafetensorError, grid's HDF error)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from explorer.atomic import atomic_write
from explorer.cli import main
from explorer.errors import SoupError
from explorer.ownership import claim
from tests import test_hardening
from tests.test_hardening import MIX, model_args

soup_files, grid_argv = test_hardening.soup_files, test_hardening.grid_argv  # the same fixtures


def export_argv(soup_files, out: Path, *more: str) -> list[str]:
    return ["export", *model_args(*soup_files), "--weights", MIX, "--out", str(out), *more]


def last_line(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("kind", ["empty", "link", "other export's"])
def test_force_never_deletes_files_beside_a_recipe_it_did_not_write(soup_files, tmp_path, capsys, kind):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("years of work")
    if kind == "empty":
        (notes / "recipe.yaml").write_text("")
    elif kind == "link":
        assert main(export_argv(soup_files, tmp_path / "mix")) == 0
        (notes / "recipe.yaml").symlink_to(tmp_path / "mix" / "recipe.yaml")
    else:  # a real export's recipe copied beside the user's files
        assert main(export_argv(soup_files, tmp_path / "mix")) == 0
        (notes / "recipe.yaml").write_text((tmp_path / "mix" / "recipe.yaml").read_text())
    assert main(export_argv(soup_files, notes, "--force")) == 2
    assert "is not an earlier export" in last_line(capsys.readouterr().err)
    assert (notes / "thesis.txt").read_text() == "years of work"


def test_force_refuses_an_export_a_user_added_files_to_and_replaces_an_unchanged_one(
    soup_files, tmp_path, capsys
):
    out = tmp_path / "mix"
    assert main(export_argv(soup_files, out)) == 0
    written = yaml.safe_load((out / "recipe.yaml").read_text())["written"]
    assert "adapter_model.safetensors" in written and "recipe.yaml" not in written
    assert main(export_argv(soup_files, out, "--force")) == 0  # unchanged: replaced
    (out / "my_eval.txt").write_text("results I wrote here")
    assert main(export_argv(soup_files, out, "--force")) == 2
    assert "my_eval.txt" in last_line(capsys.readouterr().err)
    assert (out / "my_eval.txt").is_file()


def test_a_second_writer_to_the_same_target_refuses(soup_files, tmp_path, capsys):
    out = tmp_path / "mix"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:  # another writer, alive, holds the target's lock
        (tmp_path / ".mix.explorer-lock").write_text(str(holder.pid))
        assert main(export_argv(soup_files, out)) == 2
        assert f"pid {holder.pid}" in last_line(capsys.readouterr().err) and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(export_argv(soup_files, out)) == 0  # its writer is gone: the lock is taken over
    assert not (tmp_path / ".mix.explorer-lock").exists()


def test_a_target_made_meanwhile_by_another_writer_is_kept(tmp_path):
    target = tmp_path / "mix"
    with pytest.raises(SoupError, match="created by another process meanwhile"):
        with claim(target), atomic_write(target, folder=True, replace=False) as tmp:
            (tmp / "mine.txt").write_text("second")
            target.mkdir()  # the first writer finished first
            (target / "theirs.txt").write_text("first")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix"]


def test_export_to_the_current_folder_is_refused(soup_files, tmp_path, capsys, monkeypatch):
    here = tmp_path / "work"
    here.mkdir()
    (here / "thesis.txt").write_text("years of work")
    monkeypatch.chdir(here)
    for out in (".", str(here), ".."):
        assert main(export_argv(soup_files, Path(out), "--force")) == 2
        assert "is the current folder or one above it" in last_line(capsys.readouterr().err)
    assert (here / "thesis.txt").read_text() == "years of work"


def test_a_leftover_old_name_link_does_not_break_a_forced_export(soup_files, tmp_path, capsys):
    out = tmp_path / "mix"
    assert main(export_argv(soup_files, out)) == 0
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data.txt").write_text("mine")
    left = tmp_path / f".mix.explorer-tmp-{os.getpid()}-old"
    left.symlink_to(keep)
    assert main(export_argv(soup_files, out, "--force")) == 0
    assert (keep / "data.txt").read_text() == "mine" and left.is_symlink()
    assert (out / "recipe.yaml").is_file()


# ------------------------------------------------------------------------------------------------
# grid --out


def test_grid_out_is_replaced_only_with_force_and_only_when_it_is_results(grid_argv, tmp_path, capsys):
    argv = [*grid_argv, "--objective", "readable"]
    front = tmp_path / "front.nc"
    assert main([*argv, "--out", str(front)]) == 0
    before = front.read_bytes()
    assert main([*argv, "--out", str(front)]) == 2  # item 6: no overwrite without --force
    assert "pass --force" in last_line(capsys.readouterr().err) and front.read_bytes() == before
    assert main([*argv, "--out", str(front), "--force"]) == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main([*argv, "--out", str(notes), "--force"]) == 2
    assert "not a results file" in last_line(capsys.readouterr().err) and notes.read_text() == "my notes"


def test_force_does_not_replace_a_device_node_or_a_pipe(grid_argv, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    targets = [fifo]
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
        targets.append(node)
    except (PermissionError, OSError):
        pass  # not allowed here: the pipe stands for it
    for target in targets:
        assert main([*grid_argv, "--objective", "readable", "--out", str(target), "--force"]) == 2
        assert "not a regular file" in last_line(capsys.readouterr().err)
        assert not target.is_file() and target.exists()


# ------------------------------------------------------------------------------------------------
# a full disk (a file-size limit makes every write past 64 kB fail as a full disk does)

FULL = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))\n"
    "from explorer.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def run_on_full_disk(argv: list[str], limit: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(
        [sys.executable, "-c", FULL, str(limit), *argv], capture_output=True, text=True, env=env, check=False
    )


def test_an_export_to_a_full_disk_is_one_line_and_keeps_the_earlier_export(soup_files, tmp_path):
    out = tmp_path / "mix"
    assert main(export_argv(soup_files, out, "--format", "merged")) == 0
    before = sorted(p.name for p in out.iterdir())
    done = run_on_full_disk(export_argv(soup_files, out, "--format", "merged", "--force"), 64_000)
    assert done.returncode == 2, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"error: cannot write the export to {out}") and "File too large" in line
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_grid_out_on_a_full_disk_is_one_line_and_keeps_the_earlier_results(grid_argv, tmp_path):
    front = tmp_path / "front.nc"
    argv = [*grid_argv, "--objective", "readable", "--no-cache"]
    assert main([*argv, "--out", str(front)]) == 0
    before = front.read_bytes()
    done = run_on_full_disk([*argv, "--out", str(front), "--force"], 8_000)
    assert done.returncode == 2, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"error: cannot write the results to {front}") and "MB free" in line
    assert front.read_bytes() == before


def test_pick_out_replaces_only_a_choice_it_wrote(tmp_path, capsys):
    import numpy as np

    from explorer.frontier.results import save_results
    from tests.test_choose import MAX, MIN, TWO, TWO_HIGH, TWO_LOW, T, results_dataset

    ds = results_dataset(
        TWO, TWO_LOW, TWO_HIGH, np.stack([1 - T, T], axis=1), ["positive", "concise"], [MAX, MIN]
    )
    front = save_results(ds, tmp_path / "front.nc")
    argv = ["pick", "--frontier", str(front), "--knee", "--out"]
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    assert main([*argv, str(notes)]) == 2
    assert "not a choice written by explorer pick" in last_line(capsys.readouterr().err)
    assert notes.read_text() == '{"my": "notes"}'
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    assert main([*argv, str(pipe)]) == 2
    assert "not a regular file" in last_line(capsys.readouterr().err) and not pipe.is_file()
    choice = tmp_path / "choice.json"
    assert main([*argv, str(choice)]) == 0
    assert main([*argv, str(choice)]) == 0  # its own earlier choice is replaced
