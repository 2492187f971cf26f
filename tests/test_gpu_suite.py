"""The GPU suite's dry run: ``bench/gpu_suite.py --device cpu --tiny`` in a subprocess writes every
report in the bench/results layout, its checks pass, and it imports nothing beyond torch,
transformers, peft, numpy, safetensors, the standard library and the explorer core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "bench" / "gpu_suite.py"
REPORTS = (
    "correctness",
    "mix_switch-llama-1b",
    "mix_switch-llama-7b",
    "frontier-llama-1b",
    "frontier-llama-7b",
    "grid-llama-7b",
    "profile-llama-7b",
    "optional-llama-7b",
    "imports",
    "suite",
)
THROUGHPUT = ("frontier-llama-1b", "frontier-llama-7b", "grid-llama-7b")
FORBIDDEN = {"panel", "holoviews", "bokeh", "param", "ray", "xarray"}


def run_suite(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, str(SUITE), "--device", "cpu", "--tiny", "--out", str(out), "--check-imports"]
    return subprocess.run(
        [*command, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """The dry run's process and its reports by name (those it wrote)."""
    out = tmp_path_factory.mktemp("gpu-suite")
    proc = run_suite(out)
    reports = {
        name: json.loads((out / f"{name}-cpu.json").read_text())
        for name in REPORTS
        if (out / f"{name}-cpu.json").exists()
    }
    return proc, reports


def rows(reports: dict[str, dict], name: str) -> dict[str, dict]:
    return {r["method"]: r for r in reports[name]["rows"]}


def test_the_dry_run_passes_and_writes_every_report(dry_run):
    proc, reports = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(reports) == sorted(REPORTS)
    assert [s["status"] for s in reports["suite"]["sections"]] == ["ok"] * len(reports["suite"]["sections"])
    assert "GPU suite on CPU" in proc.stdout and "imports: ok" in proc.stdout  # the one-screen summary


def test_every_report_has_the_bench_results_layout(dry_run):
    _, reports = dry_run
    for name, report in reports.items():
        assert {"benchmark", "device", "model", "rows"} <= set(report), name
        assert report["device"] == "cpu", name
        for row in report["rows"]:
            assert {"method", "of_ceiling"} <= set(row), (name, row)


def test_correctness_in_bf16_and_fp16(dry_run):
    _, reports = dry_run
    checks = reports["correctness"]["rows"]
    logits = {r["dtype"]: r for r in checks if r["method"] == "logits_soup_vs_merged"}
    batches = {r["dtype"]: r for r in checks if r["method"] == "batch_vs_alone"}
    assert sorted(logits) == sorted(batches) == ["bfloat16", "float16"]
    for r in logits.values():
        assert r["ok"] and r["soup_vs_merged"] <= r["tolerance"] < r["mix_effect_min"], r
    for r in batches.values():
        assert r["ok"] and r["rows"] == 16 and r["logits_vs_alone_max"] <= r["tolerance"], r
        assert r["rows_differ"] == len(r["first_differing_steps"]) <= 4, r
        assert r["distinct_responses"] > 1, r


def test_mix_switch_rows(dry_run):
    _, reports = dry_run
    for shape in ("llama-1b", "llama-7b"):
        by = rows(reports, f"mix_switch-{shape}")
        assert list(by) == ["soup", "merge", "peft_cat"]
        assert by["soup"]["x_soup"] == 1.0 and all(r["ms"] > 0 for r in by.values())
        assert 0 < reports[f"mix_switch-{shape}"]["stacked_share_of_model"] < 1


@pytest.mark.parametrize("name", THROUGHPUT)
def test_throughput_rows_for_every_method(dry_run, name):
    _, reports = dry_run
    report, by = reports[name], rows(reports, name)
    assert list(by) == ["base", "soup", "merge_each", "peft_mixed"]
    assert report["rows_total"] == report["mixes"] * report["prompts"]
    for r in by.values():
        assert r["tokens_per_s"] > 0 and r["peak_bytes"] is None  # no peak memory on the CPU
    assert by["base"]["of_ceiling"] == 1.0 and by["soup"]["x_soup_time"] == 1.0
    assert by["peft_mixed"]["build_s"] > 0


def test_the_grid_is_66_mixes_and_scales_the_slow_methods(dry_run):
    _, reports = dry_run
    report, by = reports["grid-llama-7b"], rows(reports, "grid-llama-7b")
    assert report["mixes"] == 66
    assert by["merge_each"]["extrapolated"] and by["merge_each"]["measured_mixes"] == 2
    assert by["peft_mixed"]["extrapolated"] and by["peft_mixed"]["measured_rows"] < report["rows_total"]


def test_the_profile_finds_the_soups_hook(dry_run):
    _, reports = dry_run
    report, by = reports["profile-llama-7b"], rows(reports, "profile-llama-7b")
    assert report["hooks_labelled"] == 8  # q, k, v, o in each of the tiny model's 2 layers
    assert by["soup"]["hook_calls"] > 0 and 0 < by["soup"]["hook_share"] < 1
    assert "aten::linear" in by["soup"]["ops"]
    assert by["base"]["hook_calls"] == 0 and by["soup"]["top_ops"]


def test_optional_rows_run_or_say_they_are_absent(dry_run):
    _, reports = dry_run
    for r in reports["optional-llama-7b"]["rows"]:
        assert r["status"] == "ok" or r["status"].startswith("absent"), r


def test_no_forbidden_module_was_imported(dry_run):
    _, reports = dry_run
    imports = reports["imports"]
    assert imports["ok"] and imports["violations"] == []
    assert not FORBIDDEN & set(imports["modules"]), imports["modules"]
    assert {"torch", "transformers", "peft"} <= set(imports["modules"])
    assert not [m for m in imports["repo_modules_loaded"] if m.startswith("explorer/app")]


def test_the_import_check_fails_a_run_that_imports_a_forbidden_module(tmp_path):
    proc = run_suite(tmp_path, "--only", "imports", "--also-import", "xarray")
    imports = json.loads((tmp_path / "imports-cpu.json").read_text())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert not imports["ok"] and "xarray was loaded" in imports["violations"]
