"""The CLI and its YAML config: options, overrides and their error messages."""

from __future__ import annotations

import pytest

from explorer.cli import main
from explorer.config import ModelOptions, merge, parse_adapter_args, read_config
from explorer.errors import SoupError
from explorer.mix import parse_weights


def test_adapter_args_keep_order_and_refuse_repeats():
    assert list(parse_adapter_args(["b=./x", "a=/y"])) == ["b", "a"]
    with pytest.raises(SoupError, match="adapter name 'a' is given twice"):
        parse_adapter_args(["a=./x", "a=./y"])
    with pytest.raises(SoupError, match="write NAME=FOLDER"):
        parse_adapter_args(["just-a-path"])


def test_config_file_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "sub" / "soup.yaml"
    cfg.write_text(
        "base: ../base\nadapters:\n  concise: ./c\n  positive: /abs/p\ndevice: cpu\nobjectives: [a, b]\n"
    )
    opts = read_config(cfg)
    assert opts.base == str(tmp_path / "sub" / ".." / "base")
    assert opts.adapters == {"concise": str(tmp_path / "sub" / "c"), "positive": "/abs/p"}
    assert opts.device == "cpu" and opts.extra == {"objectives": ["a", "b"]}


def test_command_line_overrides_config():
    file = ModelOptions(base="/b", adapters={"a": "/a"}, device="cpu", dtype="float32")
    opts = merge(file, dtype="float64", adapters={"z": "/z"})
    assert (opts.base, opts.adapters, opts.device, opts.dtype) == ("/b", {"z": "/z"}, "cpu", "float64")
    assert merge(file).adapters == {"a": "/a"}


@pytest.mark.parametrize("text", ["base: [unclosed", "- just\n- a list\n"])
def test_bad_config_files(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(SoupError, match=str(cfg)):
        read_config(cfg)


def test_parse_weights():
    assert parse_weights("a=0.25, b=-1.5", ["a", "b", "c"]) == {"a": 0.25, "b": -1.5, "c": 0.0}
    with pytest.raises(SoupError, match=r"\['d'\], which are not adapters .*; adapters: \['a', 'b'\]"):
        parse_weights("d=1", ["a", "b"])
    with pytest.raises(SoupError, match="must be a number"):
        parse_weights("a=lots", ["a", "b"])
    with pytest.raises(SoupError, match="names 'a' twice"):
        parse_weights("a=1,a=2")
    with pytest.raises(SoupError, match="must be a finite number"):
        parse_weights("a=nan")
    with pytest.raises(SoupError, match="write NAME=NUMBER"):
        parse_weights("a")


def test_generate_from_the_command_line(llama_files, capsys):
    base, adapters = llama_files
    argv = [
        "generate",
        "--base",
        str(base),
        "--device",
        "cpu",
        "--max-new-tokens",
        "4",
        "--prompt",
        "Why is the sky blue?",
    ]
    argv += [f"--adapter={n}={p}" for n, p in adapters.items()]
    assert main([*argv, "--weights", "helpful=1", "--weights", "concise=0.5,positive=0.5"]) == 0
    out = capsys.readouterr().out
    assert "[helpful=1, concise=0, positive=0] Why is the sky blue?" in out
    assert "[helpful=0, concise=0.5, positive=0.5]" in out
    assert out.count("scores: positive=") == 2 and "  concise=" in out  # adapters named after built-ins


def test_objectives_from_config_file(llama_files, tmp_path, capsys):
    base, adapters = llama_files
    cfg = tmp_path / "soup.yaml"
    cfg.write_text(
        f"base: {base}\ndevice: cpu\nobjectives: [readable]\nadapters:\n"
        + "".join(f"  {n}: {p}\n" for n, p in adapters.items())
    )
    assert main(["generate", "--config", str(cfg), "--max-new-tokens", "3", "--prompt", "Hi there"]) == 0
    out = capsys.readouterr().out
    assert "scores: readable=" in out and "positive=" not in out.split("scores:")[1]


def test_unknown_objective_on_the_command_line(llama_files, capsys):
    base, adapters = llama_files
    argv = ["generate", "--base", str(base), "--device", "cpu", "--objective", "funny"]
    assert main(argv + [f"--adapter={n}={p}" for n, p in adapters.items()]) == 2
    assert "unknown objective 'funny': use one of" in capsys.readouterr().err


def test_cli_errors_are_one_line_without_traceback(llama_files, tmp_path, capsys):
    base, adapters = llama_files
    code = main(["info", "--base", str(base), "--adapter", f"x={tmp_path / 'missing'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: adapter 'x': folder") and "Traceback" not in err


def test_config_file_drives_the_cli(llama_files, tmp_path, capsys):
    base, adapters = llama_files
    cfg = tmp_path / "soup.yaml"
    lines = [f"base: {base}", "device: cpu", "dtype: float64", "adapters:"] + [
        f"  {n}: {p}" for n, p in adapters.items()
    ]
    cfg.write_text("\n".join(lines) + "\n")
    assert main(["info", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "dtype=torch.float64" in out and "helpful: rank 2, alpha 4" in out
