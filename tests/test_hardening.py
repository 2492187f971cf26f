"""Issue 15, as a hostile or unlucky user: stale results (2), silent garbage (3), tracebacks (5)
and data loss (6). Each test reproduces the failure, then checks the message or the refusal and
that nothing was lost. The served app's probes (1, 4) are in tests/test_app_hardening.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.errors import SoupError
from explorer.frontier.cache import cache_key, soup_fingerprint
from explorer.frontier.grid import GridSpec
from explorer.mix import parse_weights
from explorer.objectives import Objective, get_objective
from explorer.sampling import SamplingConfig, generate
from explorer.soup import Soup
from tests.tiny import LETTERS, write_adapter

MIX = "helpful=0.5,concise=0.5,positive=0"


@pytest.fixture
def soup_files(llama_files, tmp_path):
    """Copies of the tiny base and adapters that a test may edit."""
    base, adapters = llama_files
    base_copy = Path(shutil.copytree(base, tmp_path / "base"))
    return base_copy, {n: Path(shutil.copytree(p, tmp_path / n)) for n, p in adapters.items()}


def model_args(base: Path, adapters: dict[str, Path]) -> list[str]:
    return ["--base", str(base), "--device", "cpu", "--dtype", "float64"] + [
        f"--adapter={n}={p}" for n, p in adapters.items()
    ]


@pytest.fixture
def grid_argv(soup_files, tmp_path, monkeypatch):
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\nWrite a story\n")
    return [
        "grid",
        *model_args(*soup_files),
        "--prompts",
        str(prompts),
        "--resolution",
        "1",
        "--max-new-tokens",
        "3",
        "--objective",
        "concise",
    ]


def cached_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "frontiers"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def spec_of(soup: Soup, objective: Objective = LETTERS) -> GridSpec:
    return GridSpec.on_simplex(
        soup.names, 1, prompts=["Hi"], objectives=[LETTERS, objective], sampling=SamplingConfig(3)
    )


# ------------------------------------------------------------------------------------------------
# 2. stale results: every input of a result is in its cache key and its recipe


def test_an_edited_adapter_config_is_a_new_cache_key_and_a_rerun_computes_again(
    grid_argv, tmp_path, soup_files
):
    _, adapters = soup_files
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc"), "--force"]
    assert main(argv) == 0
    assert main(argv) == 0  # a rerun reads the cache: still one entry
    assert len(cached_files(tmp_path)) == 1
    edit_json(adapters["helpful"] / "adapter_config.json", lora_alpha=40)  # what the old key missed
    assert main(argv) == 0
    assert len(cached_files(tmp_path)) == 2  # computed again under a new key, the old one kept


@pytest.mark.parametrize(
    "change",
    [
        {"lora_alpha": 40},
        {"use_rslora": True},
        {"alpha_pattern": {"q_proj": 1}},
    ],
)
def test_a_recipe_refuses_an_adapter_whose_config_changed(soup_files, tmp_path, capsys, change):
    base, adapters = soup_files
    out = tmp_path / "mix"
    assert main(["export", *model_args(base, adapters), "--weights", MIX, "--out", str(out)]) == 0
    edit_json(adapters["helpful"] / "adapter_config.json", **change)
    assert main(["export", "--recipe", str(out), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "adapter 'helpful'" in err and "adapter_config.json" in err and "changed since the export" in err
    assert not (tmp_path / "again").exists() and (out / "recipe.yaml").is_file()


def test_a_recipe_refuses_a_changed_chat_template_and_the_cache_key_follows_it(soup_files, tmp_path, capsys):
    base, adapters = soup_files
    out = tmp_path / "mix"
    assert main(["export", *model_args(base, adapters), "--weights", MIX, "--out", str(out)]) == 0
    before = Soup.load(base, adapters, device="cpu")
    key = cache_key(before, spec_of(before))
    template = base / "chat_template.jinja"
    template.write_text(template.read_text() + "{# edited #}")
    after = Soup.load(base, adapters, device="cpu")
    assert cache_key(after, spec_of(after)) != key
    assert "chat_template.jinja" in soup_fingerprint(after)["base"]
    assert main(["export", "--recipe", str(out), "--out", str(tmp_path / "again")]) == 2
    assert "the base model" in (err := capsys.readouterr().err) and "chat_template.jinja" in err


def test_a_fixed_user_scorer_is_a_new_cache_key(soup_files, tmp_path):
    scorer = tmp_path / "my_scorer.py"
    scorer.write_text("def score(prompts, responses):\n    return [1 / 0 for r in responses]\n")
    broken = get_objective(f"{scorer}:score")
    scorer.write_text("def score(prompts, responses):\n    return [float(len(r)) for r in responses]\n")
    fixed = get_objective(f"{scorer}:score")
    soup = Soup.load(*soup_files, device="cpu")
    assert broken.name == fixed.name and cache_key(soup, spec_of(soup, broken)) != cache_key(
        soup, spec_of(soup, fixed)
    )


def test_a_retrained_reward_model_is_a_new_cache_key(tmp_path):
    from tests.tiny import write_tiny_reward_model

    folder = tmp_path / "rm"
    first = get_objective(f"reward:{write_tiny_reward_model(folder, seed=0)}")
    write_tiny_reward_model(folder, seed=1)  # retrained into the same folder
    second = get_objective(f"reward:{folder}")
    assert first.name == second.name and first.version != second.version


# ------------------------------------------------------------------------------------------------
# 3. silent garbage


def test_a_huge_weight_is_refused_before_anything_is_written(soup_files, tmp_path, capsys):
    with pytest.raises(SoupError, match=r"beyond \+-10000"):
        parse_weights("helpful=1e308")
    out = tmp_path / "mix"
    argv = ["export", *model_args(*soup_files), "--weights", "helpful=1e308", "--out", str(out)]
    assert main(argv) == 2
    assert "helpful=1e+308 is beyond +-10000" in capsys.readouterr().err
    assert not out.exists()
    soup = Soup.load(*soup_files, device="cpu")
    with pytest.raises(SoupError, match="overflow"):
        generate(soup, ["Hi"], torch.tensor([[1e308, 0.0, 0.0]], dtype=torch.float64), max_new_tokens=2)


def test_an_export_that_overflows_its_dtype_writes_nothing(soup_files, tmp_path):
    base, adapters = soup_files
    loud = write_adapter(
        Soup.load(base, adapters, device="cpu").model,
        tmp_path / "loud",
        seed=9,
        std=30.0,
        r=2,
        lora_alpha=4,
        target_modules=["q_proj"],
    )
    soup = Soup.load(base, {**adapters, "loud": loud}, device="cpu", dtype="float16")
    with pytest.raises(SoupError, match="holds inf or NaN"):
        soup_export(soup, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def soup_export(soup: Soup, out: Path):
    from explorer.export import export_mix

    return export_mix(soup, {"helpful": 0, "concise": 0, "positive": 0, "loud": 1e4}, out, format="merged")


def test_a_prompt_longer_than_the_context_is_refused_with_the_numbers(
    grid_argv, tmp_path, capsys, soup_files
):
    soup = Soup.load(*soup_files, device="cpu")  # context: 128 tokens
    long = " ".join(["sky"] * 200)
    with pytest.raises(SoupError, match=r"prompt 1 is \d+ tokens .*context of 128 tokens leaves 125"):
        generate(soup, ["Hi", long], {"helpful": 1.0, "concise": 0.0, "positive": 0.0}, max_new_tokens=3)
    prompts = tmp_path / "long.txt"
    prompts.write_text(f"Why is the sky blue?\n{long}\n")
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
    argv[argv.index("--prompts") + 1] = str(prompts)
    assert main(argv) == 2
    assert "context of 128 tokens" in capsys.readouterr().err
    assert cached_files(tmp_path) == [] and not (tmp_path / "a.nc").exists()  # nothing generated


@pytest.mark.parametrize(
    "body, words",
    [
        ("return [None for r in responses]", "returned None for response 0"),
        ("return [float('inf') for r in responses]", "returned inf for response 0"),
        ("return [1 / 0 for r in responses]", "failed on every one of"),
    ],
)
def test_a_scorer_giving_garbage_stops_the_grid_and_caches_nothing(grid_argv, tmp_path, capsys, body, words):
    scorer = tmp_path / "bad_scorer.py"
    scorer.write_text(f"def score(prompts, responses):\n    {body}\n")
    argv = [*grid_argv, "--objective", f"{scorer}:score", "--out", str(tmp_path / "a.nc")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert cached_files(tmp_path) == [] and not (tmp_path / "a.nc").exists()


def test_a_scorer_that_hangs_times_out_with_a_message():
    import threading

    release = threading.Event()

    def sleepy(prompts, responses):
        release.wait()  # hangs until the test ends
        return [0.0] * len(responses)

    try:
        with pytest.raises(SoupError, match=r"'sleepy' did not answer within 0.2 s"):
            Objective("sleepy", sleepy, timeout_s=0.2).score(["p"], ["r"])
    finally:
        release.set()


def test_nan_for_one_response_is_still_allowed():
    values = Objective("some", lambda p, r: [np.nan, 1.0]).score(["a", "b"], ["x", "y"])
    assert np.isnan(values[0]) and values[1] == 1.0


# ------------------------------------------------------------------------------------------------
# 5. tracebacks: every error path is one line with what to do, exit code 2


def test_an_export_to_a_folder_it_cannot_write_is_a_message(soup_files, tmp_path, capsys):
    locked = Path("/proc/mix")  # even root cannot create a folder here
    argv = ["export", *model_args(*soup_files), "--weights", MIX, "--out", str(locked)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it: the model's loading bar
    assert last.startswith("error: cannot write the export to /proc/mix") and "Traceback" not in err


@pytest.mark.parametrize("key", ["weights", "format", "base", "adapters", "dtype"])
def test_a_recipe_with_a_missing_key_is_a_message(soup_files, tmp_path, capsys, key):
    import yaml

    out = tmp_path / "mix"
    assert main(["export", *model_args(*soup_files), "--weights", MIX, "--out", str(out)]) == 0
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    del recipe[key]
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["export", "--recipe", str(out), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert f"has no valid '{key}'" in err and "Traceback" not in err and not (tmp_path / "again").exists()


def test_a_truncated_cached_front_is_moved_aside_and_computed_again(grid_argv, tmp_path, capsys):
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc"), "--force"]
    assert main(argv) == 0
    (cached,) = (tmp_path / "cache" / "frontiers").glob("*.nc")
    first = cached.read_bytes()
    cached.write_bytes(first[: len(first) // 3])  # a crash or a full disk cut it
    with pytest.warns(RuntimeWarning, match="could not be read .* moved aside"):
        assert main(argv) == 0  # `explorer serve` reads the same cache at start-up (load_cached)
    names = cached_files(tmp_path)
    assert cached.name in names and any(".corrupt-" in n for n in names)  # kept aside, and computed again


def test_damaged_journal_lines_are_skipped_and_generated_again(soup_files, tmp_path):
    from explorer.frontier.cache import RunFiles
    from explorer.frontier.evaluation import evaluate_grid
    from explorer.frontier.results import done_mask, row_texts

    soup = Soup.load(*soup_files, device="cpu", dtype="float64")
    spec = GridSpec.on_simplex(
        soup.names,
        1,
        prompts=["Hi", "Tell a story"],
        objectives=[LETTERS, LETTERS.__class__("l2", LETTERS.scorer)],
        sampling=SamplingConfig(3),
    )
    reference = evaluate_grid(soup, spec)
    files = RunFiles(tmp_path, cache_key(soup, spec))
    files.journal.write_text(
        '{"rows": [[99, 0, 0]], "texts": ["x"], "n_tokens": [1], "finished": [true], "scores": [[1, 2]]}\n'
        '{"rows": 5}\n'
        '["not", "a", "record"]\n'
        '{"rows": [[0, 0, 0]], "texts": ["x"], "n_tok'  # cut by a crash
    )
    with pytest.warns(RuntimeWarning, match="4 damaged line"):
        ds = evaluate_grid(soup, spec, cache=tmp_path)
    assert done_mask(ds).all() and (row_texts(ds) == row_texts(reference)).all()


@pytest.mark.parametrize("kind, words", [("folder", "is a folder"), ("loop", "symbolic link to nothing")])
def test_a_prompts_file_that_is_a_folder_or_a_link_loop(grid_argv, tmp_path, capsys, kind, words):
    bad = tmp_path / "bad"
    if kind == "folder":
        bad.mkdir()
    else:
        bad.symlink_to(tmp_path / "bad")  # points at itself
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
    argv[argv.index("--prompts") + 1] = str(bad)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "does not exist" not in err


# ------------------------------------------------------------------------------------------------
# 6. data loss


def test_export_force_replaces_only_an_earlier_export(soup_files, tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("years of work")
    argv = ["export", *model_args(*soup_files), "--weights", MIX, "--force"]
    assert main([*argv, "--out", str(notes)]) == 2
    assert "is not an earlier export" in capsys.readouterr().err
    assert (notes / "thesis.tex").read_text() == "years of work"
    assert main([*argv, "--out", str(tmp_path / "mix")]) == 0
    assert main([*argv, "--out", str(tmp_path / "mix")]) == 0  # an earlier export is replaced


def test_grid_out_refuses_to_overwrite_a_file_that_is_not_results(grid_argv, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    argv = [*grid_argv, "--objective", "readable"]
    for force in ([], ["--force"]):  # issue 25: not even with --force (tests/test_hardening_outputs.py)
        assert main([*argv, "--out", str(notes), *force]) == 2
        assert "is not a results file" in capsys.readouterr().err
    assert notes.read_text() == "my notes"
    front = tmp_path / "front.nc"
    assert main([*argv, "--out", str(front)]) == 0
    assert main([*argv, "--out", str(front), "--force"]) == 0  # an earlier results file is replaced


def test_a_killed_exports_temporary_folder_is_removed_at_the_next_export(soup_files, tmp_path):
    import subprocess
    import sys

    killed = (  # a writer killed with SIGKILL in the middle of an export (atomic.py alone: fast)
        "import importlib.util, os, signal, sys\n"
        "spec = importlib.util.spec_from_file_location('atomic', sys.argv[2])\n"
        "atomic = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(atomic)\n"
        "writing = atomic.atomic_write(sys.argv[1], folder=True)\n"
        "tmp = writing.__enter__()\n"
        "(tmp / 'model.safetensors').write_bytes(b'0' * 100000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    atomic = Path(__file__).parents[1] / "explorer" / "atomic.py"
    out = subprocess.run([sys.executable, "-c", killed, str(tmp_path / "merged"), str(atomic)], check=False)
    assert out.returncode == -9
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".merged.")]  # the failure
    assert (left / "model.safetensors").is_file()
    assert main(["export", *model_args(*soup_files), "--weights", MIX, "--out", str(tmp_path / "mix")]) == 0
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("command", ["generate", "grid", "export"])
def test_a_name_twice_in_weights_is_refused_everywhere(grid_argv, soup_files, tmp_path, capsys, command):
    twice = "helpful=1,helpful=2"
    argv = {
        "generate": ["generate", *model_args(*soup_files), "--weights", twice, "--max-new-tokens", "2"],
        "grid": [*grid_argv, "--objective", "readable", "--point", twice, "--out", str(tmp_path / "a.nc")],
        "export": ["export", *model_args(*soup_files), "--weights", twice, "--out", str(tmp_path / "mix")],
    }[command]
    assert main(argv) == 2
    assert "names 'helpful' twice" in capsys.readouterr().err
    assert not (tmp_path / "mix").exists() and not (tmp_path / "a.nc").exists()
