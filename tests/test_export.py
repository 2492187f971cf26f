"""Export: exact PEFT adapter, rank-K compression with its error, merged model, recipe round trip."""

from __future__ import annotations

import filecmp
import shutil

import pytest
import torch
import yaml
from peft import PeftModel
from transformers import AutoModelForCausalLM

from explorer.cli import main
from explorer.errors import SoupError
from explorer.export import export_mix, mixed_factors, truncate
from tests.tiny import relative_error as rel

MIX = {"helpful": 0.7, "concise": -0.4, "positive": 1.3}
RTOL = 1e-9


def inputs(soup):
    torch.manual_seed(1)
    return torch.randint(3, len(soup.tokenizer), (2, 9))


def soup_logits(soup, ids, mix=MIX):
    with soup.mixed(mix), torch.no_grad():
        return soup.model(input_ids=ids).logits


def test_adapter_export_loads_in_peft_and_equals_the_soup(tiny_files, soup64, tmp_path):
    _, base, _ = tiny_files
    result = export_mix(soup64, MIX, tmp_path / "mix")
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64), result.path
    )
    ids = inputs(soup64)
    with torch.no_grad():
        theirs = model.eval()(input_ids=ids).logits
    assert rel(theirs, soup_logits(soup64, ids)) < RTOL
    recipe = yaml.safe_load((result.path / "recipe.yaml").read_text())
    assert recipe["weights"] == MIX and recipe["format"] == "adapter"
    assert set(recipe["adapters"]) == set(MIX) and len(recipe["adapters"]["helpful"]["sha256"]) == 64


def test_merged_export_loads_in_transformers_and_equals_the_soup(soup64, tmp_path):
    result = export_mix(soup64, MIX, tmp_path / "merged", format="merged")
    model = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float64).eval()
    ids = inputs(soup64)
    with torch.no_grad():
        assert rel(model(input_ids=ids).logits, soup_logits(soup64, ids)) < RTOL
    assert (result.path / "tokenizer.json").is_file()


def test_lowrank_at_the_full_rank_is_exact(tiny_files, soup64, tmp_path):
    _, base, _ = tiny_files
    full = soup64.total_rank
    result = export_mix(soup64, MIX, tmp_path / "low", format="lowrank", rank=full)
    assert result.overall_error < 1e-12
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64), result.path
    )
    ids = inputs(soup64)
    with torch.no_grad():
        assert rel(model.eval()(input_ids=ids).logits, soup_logits(soup64, ids)) < RTOL


def test_lowrank_error_is_the_measured_frobenius_error(soup64):
    weights = dict(MIX)
    for module, f in mixed_factors(soup64, weights).items():
        exact = soup64.delta(module, weights)
        for k in (1, 2):
            t, error = truncate(f, k)
            assert t.A.shape[0] == min(k, f.A.shape[0])
            measured = (torch.linalg.matrix_norm(t.B @ t.A - exact) / torch.linalg.matrix_norm(exact)).item()
            assert error == pytest.approx(measured, rel=1e-9, abs=1e-12)
            # and it is the best rank-k error: the SVD's tail
            s = torch.linalg.svdvals(exact)
            assert error == pytest.approx((s[k:].square().sum() / s.square().sum()).sqrt().item(), rel=1e-9)


def test_zero_weight_adapters_are_dropped_from_the_exported_rank(soup64, tmp_path):
    one_hot = {"helpful": 1.0, "concise": 0.0, "positive": 0.0}
    factors = mixed_factors(soup64, one_hot)
    assert set(factors) == set(soup64.adapters["helpful"].modules)
    assert all(f.A.shape[0] == soup64.adapters["helpful"].rank for f in factors.values())


def test_recipe_round_trip_reproduces_identical_files(tiny_files, tmp_path, capsys):
    _, base, adapters = tiny_files
    argv = [
        "export",
        "--base",
        str(base),
        "--dtype",
        "float64",
        "--device",
        "cpu",
        "--weights",
        "helpful=0.7,concise=-0.4,positive=1.3",
    ] + [f"--adapter={n}={p}" for n, p in adapters.items()]
    for fmt in (["--format", "adapter"], ["--format", "lowrank", "--rank", "3"]):
        first, second = tmp_path / f"a{fmt[1]}", tmp_path / f"b{fmt[1]}"
        assert main([*argv, *fmt, "--out", str(first)]) == 0
        assert main(["export", "--recipe", str(first / "recipe.yaml"), "--out", str(second)]) == 0
        cmp = filecmp.dircmp(first, second)
        assert sorted(cmp.common_files) == sorted(p.name for p in first.iterdir())
        assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
        _, mismatch, errors = filecmp.cmpfiles(first, second, cmp.common_files, shallow=False)
        assert not mismatch and not errors
    assert "overall relative error" in capsys.readouterr().out


def test_recipe_refuses_a_changed_adapter(tiny_files, tmp_path, capsys):
    import shutil

    _, base, adapters = tiny_files
    copies = {n: shutil.copytree(p, tmp_path / n) for n, p in adapters.items()}
    argv = [
        "export",
        "--base",
        str(base),
        "--device",
        "cpu",
        "--weights",
        "helpful=1,concise=0,positive=0",
        "--out",
        str(tmp_path / "x"),
    ] + [f"--adapter={n}={p}" for n, p in copies.items()]
    assert main(argv) == 0
    from safetensors.torch import load_file, save_file

    f = copies["concise"] / "adapter_model.safetensors"
    state = load_file(f)
    next(iter(state.values()))[0, 0] += 1.0
    save_file(state, f)
    assert main(["export", "--recipe", str(tmp_path / "x"), "--out", str(tmp_path / "y")]) == 2
    assert "adapter 'concise'" in (err := capsys.readouterr().err) and "has changed since the export" in err
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "weights, kwargs, words",
    [
        ({"helpful": 1, "concise": 0, "positive": 0, "funny": 1}, {}, r"\['funny'\], which are not adapters"),
        ({"helpful": 1, "concise": 0}, {}, r"no weight given for \['positive'\]"),
        ({"helpful": "lots", "concise": 0, "positive": 0}, {}, "'lots' is not a number"),
        ({"helpful": float("nan"), "concise": 0, "positive": 0}, {}, "not a finite number"),
        (MIX, {"format": "lowrank", "rank": 0}, "--rank must be a whole number >= 1"),
        (MIX, {"format": "lowrank"}, "--rank must be a whole number >= 1"),
        (MIX, {"format": "gguf"}, "unknown export format 'gguf'"),
        ({"helpful": 0, "concise": 0, "positive": 0}, {}, "every weight is zero"),
    ],
)
def test_bad_export_input_writes_nothing(soup64, tmp_path, weights, kwargs, words):
    with pytest.raises(SoupError, match=words):
        export_mix(soup64, weights, tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []  # not even a temporary folder


def test_existing_target_needs_force(soup64, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(SoupError, match="already exists: choose another --out, or pass --force"):
        export_mix(soup64, MIX, target)
    assert (target / "keep.txt").read_text() == "mine"
    with pytest.raises(SoupError, match="is not an earlier export .*--force only replaces an export"):
        export_mix(soup64, MIX, target, force=True)  # a user's folder is never deleted
    assert (target / "keep.txt").read_text() == "mine"
    shutil.rmtree(target)
    export_mix(soup64, MIX, target)  # an earlier export...
    export_mix(soup64, MIX, target, force=True)  # ...is replaced with --force
    (target / "keep.txt").write_text("added by the user")  # but not once the user added files to it
    with pytest.raises(
        SoupError, match=r"changed since \(it holds files the export did not write \(keep.txt"
    ):
        export_mix(soup64, MIX, target, force=True)
    assert (target / "keep.txt").is_file() and (target / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left


def test_a_failed_export_leaves_nothing(soup64, tmp_path, monkeypatch):
    import explorer.export

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(explorer.export, "save_file", disk_full)
    with pytest.raises(SoupError, match=r"cannot write the export .*No space left.*nothing was written"):
        export_mix(soup64, MIX, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
