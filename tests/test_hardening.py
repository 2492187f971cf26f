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

from explorer.cache import cache_key, soup_fingerprint
from explorer.cli import main
from explorer.errors import SoupError
from explorer.grid import GridSpec
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
    argv = [*grid_argv, "--objective", "readable", "--out", str(tmp_path / "a.nc")]
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
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=0,
    )
    folder = tmp_path / "rm"
    for seed in (0, 1):  # trained, then retrained into the same folder
        torch.manual_seed(seed)
        LlamaForSequenceClassification(config).save_pretrained(folder)
        tok.save_pretrained(folder)
        if seed == 0:
            first = get_objective(f"reward:{folder}")
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
