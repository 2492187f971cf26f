"""The frontier grid on a real local Ray (``ray.init(num_cpus=2)``, one instance for the module):
results equal the single-process grid, a killed worker's chunk is retried, cancel, resume after a
driver crash, and bad input stopped before any generation."""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from explorer.errors import SoupError
from explorer.frontier.evaluation import evaluate_grid, run_grid
from explorer.frontier.grid import GridSpec, weight_grid
from explorer.objectives import BUILTINS, Objective
from explorer.sampling import SamplingConfig
from explorer.soup import Soup
from tests.tiny import LETTERS

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from explorer.distributed import RayExecutor, RayOptions  # noqa: E402

PROMPTS = (
    "Give me one tip for sleeping better.",
    "Why is the sky blue?",
    "Write a story",
    "Review the phone",
)
GREEDY = SamplingConfig(max_new_tokens=6)
PAIRED = SamplingConfig(max_new_tokens=6, temperature=0.9, top_p=0.9, seed=4)
BATCH = 6


def kill_once(prompts, responses):
    """Letters per response; kills its own process once when the flag file exists (a lost worker)."""
    flag = Path(os.environ["PSE_TEST_KILL_FLAG"])
    try:
        flag.unlink()
    except FileNotFoundError:
        return [float(sum(c.isalpha() for c in r)) for r in responses]
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for the module; workers find the tests package and the kill flag."""
    flag = tmp_path_factory.mktemp("kill") / "flag"
    root = str(Path(__file__).resolve().parent.parent)
    env = {"PYTHONPATH": root, "PSE_TEST_KILL_FLAG": str(flag), "OMP_NUM_THREADS": "1"}
    os.environ["PSE_TEST_KILL_FLAG"] = str(flag)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    yield flag
    ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.tiny import write_tiny_soup

    return write_tiny_soup(tmp_path_factory.mktemp("ray-llama"), "llama")


def load(base, adapters) -> Soup:
    return Soup.load(base, adapters, device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def executor(ray_session, files):
    base, adapters = files
    with RayExecutor.start(
        functools.partial(load, base, adapters), RayOptions(workers=2, cpus_per_worker=0.5)
    ) as ex:
        yield ex


@pytest.fixture(scope="module")
def local_soup(files):
    soup = load(*files)
    yield soup
    soup.close()


def spec_for(names, sampling=GREEDY, samples=1, objectives=(BUILTINS["concise"], LETTERS)) -> GridSpec:
    return GridSpec(weight_grid(names, 2), PROMPTS, tuple(objectives), samples, sampling)


def same(a, b) -> None:
    assert a["text"].values.tolist() == b["text"].values.tolist()
    np.testing.assert_array_equal(a["score"].values, b["score"].values)
    np.testing.assert_array_equal(a["n_tokens"].values, b["n_tokens"].values)
    assert a.attrs["cache_key"] == b.attrs["cache_key"]


# bad input first: these start no lasting worker, so the shared workers below have the CPUs


def test_a_worker_without_the_base_folder_stops_before_generating(ray_session, files, tmp_path):
    _, adapters = files
    with pytest.raises(SoupError, match="could not load the soup.*same paths"):
        RayExecutor.start(functools.partial(load, tmp_path / "missing", adapters), RayOptions(workers=1))


def test_gpus_on_a_cluster_without_gpus_and_an_unreachable_address(ray_session, files):
    loader = functools.partial(load, *files)
    with pytest.raises(SoupError, match="has 0 GPUs"):
        RayExecutor.start(loader, RayOptions(gpus_per_worker=1))
    with pytest.raises(SoupError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        RayExecutor.start(loader, RayOptions(address="127.0.0.1:9"))
    with pytest.raises(SoupError, match="pass fewer --workers"):
        RayExecutor.start(loader, RayOptions(workers=3))


@pytest.mark.parametrize("sampling, samples", [(GREEDY, 1), (PAIRED, 2)], ids=["greedy", "paired"])
def test_two_workers_equal_one_process(executor, local_soup, sampling, samples):
    spec = spec_for(local_soup.names, sampling, samples)
    alone = evaluate_grid(local_soup, spec, batch_size=BATCH)
    seen = []
    spread = run_grid(executor, spec, batch_size=BATCH, on_chunk=lambda d, p: seen.append(p))
    same(spread, alone)
    assert spread.attrs["complete"] == 1 and seen[-1].workers_alive == 2
    assert {p.chunks_done for p in seen} == set(range(1, seen[-1].chunks_total + 1))


def test_a_killed_worker_loses_only_its_chunk(executor, local_soup, ray_session):
    objectives = (BUILTINS["concise"], Objective("killer", kill_once))
    spec = spec_for(local_soup.names, objectives=objectives)
    ray_session.touch()  # the next chunk scored kills its worker
    lost = executor.lost_chunks
    spread = run_grid(executor, spec, batch_size=BATCH)
    assert not ray_session.exists() and executor.lost_chunks == lost + 1
    same(spread, evaluate_grid(local_soup, spec, batch_size=BATCH))


def test_cancel_stops_within_one_chunk_and_resume_after_a_driver_crash(executor, local_soup, tmp_path):
    spec = spec_for(local_soup.names, PAIRED, 2)
    reference = evaluate_grid(local_soup, spec, batch_size=BATCH)
    cancel = threading.Event()
    partial = run_grid(
        executor, spec, batch_size=BATCH, cache=tmp_path, cancel=cancel, on_chunk=lambda d, p: cancel.set()
    )
    assert partial.attrs["complete"] == 0 and int(partial["done"].sum()) == BATCH

    def crash(partial, progress):
        if progress.chunks_done == 2:
            raise KeyboardInterrupt  # the driver dies; the journal holds what finished

    with pytest.raises(KeyboardInterrupt):
        run_grid(executor, spec, batch_size=BATCH, cache=tmp_path, on_chunk=crash)
    progress = []
    final = run_grid(
        executor, spec, batch_size=BATCH, cache=tmp_path, on_chunk=lambda d, p: progress.append(p)
    )
    assert progress[0].resumed_rows == 3 * BATCH
    same(final, reference)
    assert list(tmp_path.glob("*.nc")) and not list(tmp_path.glob("*.partial.jsonl"))


def cli_argv(files, tmp_path, *extra):
    base, adapters = files
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:2]) + "\n")
    argv = ["grid", "--base", str(base), "--device", "cpu", "--dtype", "float64", "--prompts", str(prompts)]
    argv += [
        "--resolution",
        "2",
        "--max-new-tokens",
        "5",
        "--objective",
        "concise",
        "--objective",
        "readable",
    ]
    return argv + [f"--adapter={n}={p}" for n, p in adapters.items()] + list(extra)


def test_an_adaptive_grid_on_ray_equals_the_local_one(executor, local_soup):
    from explorer.frontier.adaptive_grid import evaluate_adaptive
    from explorer.frontier.evaluation import LocalExecutor

    spec = spec_for(local_soup.names)
    local = evaluate_adaptive(LocalExecutor(local_soup), spec, budget=9, round_size=2, batch_size=BATCH)
    spread = evaluate_adaptive(executor, spec, budget=9, round_size=2, batch_size=BATCH)
    assert len(local["mix"]) == 9  # the lattice's 6 mixes and rounds of new ones
    np.testing.assert_array_equal(spread["weights"].values, local["weights"].values)
    assert spread["text"].values.tolist() == local["text"].values.tolist()
    np.testing.assert_array_equal(spread["score"].values, local["score"].values)
    assert spread.attrs["adaptive"] == local.attrs["adaptive"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--ray", "127.0.0.1:9"], "cannot reach the Ray cluster at 127.0.0.1:9"),
        (["--ray", "auto", "--gpus-per-worker", "1"], "the Ray cluster has 0 GPUs"),
        (["--workers", "2"], "--workers only apply with --ray"),
    ],
)
def test_cli_refuses_before_generating_and_writes_nothing(
    ray_session, files, tmp_path, capsys, monkeypatch, extra, words
):
    from explorer.cli import main

    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "front.nc"
    assert main(cli_argv(files, tmp_path, "--out", str(out), *extra)) == 2
    assert words in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache" / "frontiers").exists()


def test_cli_without_ray_installed_says_how_to_get_it(files, tmp_path, capsys, monkeypatch):
    import explorer.distributed
    from explorer.cli import main

    monkeypatch.setattr(explorer.distributed, "ray_installed", lambda: False)
    assert main(cli_argv(files, tmp_path, "--out", str(tmp_path / "f.nc"), "--ray", "local")) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err


def test_cli_grid_on_ray_equals_the_local_cli_grid(executor, files, tmp_path, monkeypatch):
    from explorer.cli import main
    from explorer.frontier.results import load_results

    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    local, spread = tmp_path / "local.nc", tmp_path / "ray.nc"
    assert main(cli_argv(files, tmp_path, "--out", str(local), "--no-cache")) == 0
    assert main(cli_argv(files, tmp_path, "--out", str(spread), "--ray", "auto", "--workers", "1")) == 0
    same(load_results(spread), load_results(local))


def test_the_app_refuses_an_unreachable_cluster_before_loading(files, monkeypatch):
    import explorer.launch
    from explorer.config import ModelOptions
    from explorer.options import AppOptions, parse_app_argv

    _, app = parse_app_argv(["--ray", "127.0.0.1:9", "--workers", "1"])
    assert app.ray == RayOptions(address="127.0.0.1:9", workers=1)
    monkeypatch.setattr(explorer.launch, "open_soup", lambda *a: pytest.fail("loaded the model"))
    base, adapters = files
    options = ModelOptions(base=str(base), adapters={n: str(p) for n, p in adapters.items()})
    with pytest.raises(SoupError, match="cannot reach the Ray cluster"):
        explorer.launch.prepare_app(options, AppOptions(objectives=("concise", "readable"), ray=app.ray))


def test_ray_options_are_checked_before_anything_loads():
    import argparse

    from explorer.options import ray_options_from_args

    args = argparse.Namespace(ray=None, workers=2, gpus_per_worker=None)
    with pytest.raises(SoupError, match="--workers only apply with --ray"):
        ray_options_from_args(args)
    with pytest.raises(SoupError, match="--workers must be a whole number"):
        RayOptions(workers=0)
    with pytest.raises(SoupError, match="--gpus-per-worker must be >= 0"):
        RayOptions(gpus_per_worker=-1)
