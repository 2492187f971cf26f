"""Bad input to the soup: one clear message naming the file and what to do; nothing half-loaded."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from explorer.adapters import read_adapter
from explorer.errors import SoupError
from explorer.sampling import generate
from explorer.soup import Soup
from tests.tiny import tiny_model, tiny_tokenizer, write_adapter

MIX = {"helpful": 0.5, "concise": 0.5, "positive": 0.0}


def copy_adapter(src, dst):
    shutil.copytree(src, dst)
    return dst


def edit_config(folder, **changes):
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def no_hooks(model) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_missing_folder(tmp_path):
    with pytest.raises(SoupError, match=r"adapter 'x': folder .*nowhere does not exist"):
        read_adapter("x", tmp_path / "nowhere")


def test_folder_without_adapter(tmp_path):
    with pytest.raises(SoupError, match=r"has no adapter_config.json.*PeftModel.save_pretrained"):
        read_adapter("x", tmp_path)


def test_config_without_weights(llama_files, tmp_path):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(SoupError, match="no adapter_model.safetensors"):
        read_adapter("x", folder)


def test_truncated_weights_file(llama_files, tmp_path):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(SoupError, match="cannot read .*adapter_model.safetensors"):
        read_adapter("x", folder)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"use_dora": True}, "DoRA"),
        ({"lora_bias": True}, "lora_bias"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"peft_type": "IA3"}, "IA3 adapter, not LORA"),
    ],
)
def test_non_linear_variants_are_refused(llama_files, tmp_path, change, words):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    edit_config(folder, **change)
    with pytest.raises(SoupError, match=words) as info:
        read_adapter("x", folder)
    assert "adapter_config.json" in str(info.value)


def test_extra_tensors_are_refused(llama_files, tmp_path):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    state = load_file(folder / "adapter_model.safetensors")
    key = next(iter(state)).replace("lora_A.weight", "lora_B.bias")
    state[key] = torch.zeros(3)
    save_file(state, folder / "adapter_model.safetensors")
    with pytest.raises(SoupError, match="lora_B.bias.*not a lora_A/lora_B weight"):
        read_adapter("x", folder)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_adapter_weights(llama_files, tmp_path, bad):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    state = load_file(folder / "adapter_model.safetensors")
    key = sorted(state)[0]
    state[key][0, 0] = bad
    save_file(state, folder / "adapter_model.safetensors")
    with pytest.raises(SoupError, match=rf"tensor '{key}' in .* NaN/inf"):
        read_adapter("x", folder)


def test_pickle_only_adapter_needs_explicit_flag(llama_files, tmp_path):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    state = load_file(folder / "adapter_model.safetensors")
    (folder / "adapter_model.safetensors").unlink()
    torch.save(state, folder / "adapter_model.bin")
    with pytest.raises(SoupError, match=r"only has adapter_model.bin.*--allow-pickle"):
        read_adapter("x", folder)
    adapter = read_adapter("x", folder, allow_pickle=True)
    reference = read_adapter("x", llama_files[1]["helpful"])
    assert adapter.modules.keys() == reference.modules.keys()
    for name, m in adapter.modules.items():
        assert torch.equal(m.A, reference.modules[name].A) and torch.equal(m.B, reference.modules[name].B)


def test_pickle_with_code_is_refused_even_with_flag(llama_files, tmp_path):
    folder = copy_adapter(llama_files[1]["helpful"], tmp_path / "a")
    (folder / "adapter_model.safetensors").unlink()
    torch.save({"x": object()}, folder / "adapter_model.bin")  # not loadable with weights_only=True
    with pytest.raises(SoupError, match="cannot read .*adapter_model.bin safely"):
        read_adapter("x", folder, allow_pickle=True)


def test_adapter_from_another_base_names_module_and_shapes(llama_files, tmp_path):
    base, adapters = llama_files
    other = tiny_model("llama", len(tiny_tokenizer()))
    other.config.hidden_size = 48  # a wider model: every projection has another shape
    from transformers import LlamaForCausalLM

    wide = LlamaForCausalLM(other.config).double()
    folder = write_adapter(wide, tmp_path / "wide", seed=9, r=2, lora_alpha=4, target_modules=["v_proj"])
    model, tokenizer = _base(base)
    good = read_adapter("helpful", adapters["helpful"])
    with pytest.raises(
        SoupError, match=r"adapter 'wide' targets model.layers.0.self_attn.v_proj of shape 16x48 .* 16x32"
    ):
        Soup(model, tokenizer, [good, read_adapter("wide", folder)])
    assert no_hooks(model)  # nothing half-installed


def test_adapter_for_a_module_the_base_lacks(llama_files, tmp_path):
    base, adapters = llama_files
    folder = copy_adapter(adapters["helpful"], tmp_path / "a")
    state = load_file(folder / "adapter_model.safetensors")
    state = {k.replace("layers.1.", "layers.7."): v for k, v in state.items()}
    save_file(state, folder / "adapter_model.safetensors")
    model, tokenizer = _base(base)
    with pytest.raises(
        SoupError, match=r"adapts module 'model.layers.7.self_attn.\w+', which the base model"
    ):
        Soup(model, tokenizer, [read_adapter("x", folder)])
    assert no_hooks(model)


def test_two_adapters_with_the_same_name(llama_files):
    base, adapters = llama_files
    model, tokenizer = _base(base)
    a = read_adapter("same", adapters["helpful"])
    b = read_adapter("same", adapters["concise"])
    with pytest.raises(SoupError, match=r"two adapters are named \['same'\]"):
        Soup(model, tokenizer, [a, b])
    assert no_hooks(model)


def test_bad_adapter_fails_before_the_base_model_loads(llama_files, tmp_path, monkeypatch):
    base, adapters = llama_files
    import explorer.soup

    def must_not_load(*args, **kwargs):
        raise AssertionError("the base model was loaded although an adapter is bad")

    monkeypatch.setattr(explorer.soup, "load_base", must_not_load)
    with pytest.raises(SoupError, match="does not exist"):
        Soup.load(base, {"helpful": adapters["helpful"], "bad": tmp_path / "missing"})


def test_missing_base_folder(tmp_path, llama_files):
    with pytest.raises(SoupError, match=r"base model folder .*nope does not exist.*explorer demo"):
        Soup.load(tmp_path / "nope", {"helpful": llama_files[1]["helpful"]})


@pytest.fixture
def soup(llama_files):
    base, adapters = llama_files
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    yield soup
    soup.close()


@pytest.mark.parametrize(
    "weights, words",
    [
        ({"helpful": 1.0, "concise": 0.0}, r"missing: \['positive'\]"),
        ({"helpful": 1.0, "concise": 0.0, "positive": 0.0, "funny": 1.0}, r"unknown: \['funny'\]"),
        ({"helpful": math.nan, "concise": 0.0, "positive": 0.0}, "must be finite"),
        ({"helpful": math.inf, "concise": 0.0, "positive": 0.0}, "must be finite"),
        ({"helpful": "lots", "concise": 0.0, "positive": 0.0}, "must be numbers"),
        (torch.zeros(2, 4), r"shape \(2, 4\) given, expected \(rows, 3\)"),
        ([], "empty list of mixes"),
    ],
)
def test_bad_weights(soup, weights, words):
    soup.set_weights(MIX)
    with pytest.raises(SoupError, match=words):
        soup.set_weights(weights)
    assert soup.as_dict() == MIX  # the previous mix is kept


def test_mixes_and_batch_rows_must_agree(soup):
    with pytest.raises(SoupError, match="2 mixes given for 3 prompts"):
        generate(soup, ["a b", "c d", "e f"], [MIX, MIX], max_new_tokens=2)
    soup.set_weights([MIX, MIX])
    ids = torch.ones(3, 4, dtype=torch.long)
    with pytest.raises(SoupError, match="holds 2 mixes but the batch has 3 rows"):
        soup.model(input_ids=ids)


@pytest.mark.parametrize(
    "prompts, words", [([""], "prompt 0 is empty"), (["ok", "  "], "prompt 1 is empty"), ([], "no prompts")]
)
def test_empty_prompts(soup, prompts, words):
    with pytest.raises(SoupError, match=words):
        generate(soup, prompts, MIX, max_new_tokens=2)


def _base(base):
    from explorer.soup import load_base

    return load_base(base, device="cpu", dtype="float64")
