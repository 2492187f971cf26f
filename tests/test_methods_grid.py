"""Grids under several mixing methods (soup and decoding-time mixing) on the same mixes, prompts and
seeds: the method of each mix in the results, the cache key, per-method fronts, pick, export, and a
killed run that resumes to the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from explorer.cli import main
from explorer.errors import SoupError
from explorer.frontier.cache import key_of, soup_fingerprint
from explorer.frontier.evaluation import evaluate_grid
from explorer.frontier.grid import GridSpec, weight_grid
from explorer.frontier.results import (
    hypervolume_by_method,
    load_results,
    methods_of,
    mix_dict,
    row_texts,
    save_results,
)
from explorer.methods import parse_methods
from explorer.objectives import BUILTINS
from explorer.sampling import SamplingConfig, generate
from explorer.scheduler import Scheduler
from tests.tiny import LETTERS

PROMPTS = ("Why is the sky blue?", "Write a story")


def spec_of(soup, methods=("soup", "mod")) -> GridSpec:
    base = GridSpec(
        mixes=weight_grid(soup.names, 2),
        prompts=PROMPTS,
        objectives=(BUILTINS["concise"], LETTERS),
        sampling=SamplingConfig(6),
    )
    return base.for_methods(methods)


def test_for_methods_repeats_the_mixes_and_changes_the_cache_key_only_when_it_must(llama_soup64):
    soup = llama_soup64
    plain, both = spec_of(soup, ("soup",)), spec_of(soup)
    m = len(plain.mixes)
    assert len(both.mixes) == 2 * m and both.mix_methods[:m] == ("soup",) * m
    assert set(both.mix_methods[m:]) == {"mod"} and (both.mixes[m:] == plain.mixes).all()
    fingerprint = soup_fingerprint(soup)
    soup_only = GridSpec(plain.mixes, plain.prompts, plain.objectives, 1, plain.sampling, ("soup",) * m)
    assert key_of(fingerprint, soup.names, plain) == key_of(fingerprint, soup.names, soup_only)
    assert key_of(fingerprint, soup.names, both) != key_of(fingerprint, soup.names, plain)
    with pytest.raises(SoupError, match="unknown method"):
        plain.for_methods(["soup", "blend"])
    assert parse_methods(["soup,mod", "mod"]) == ("soup", "mod") and parse_methods(None) == ("soup",)


def test_a_two_method_grid_holds_each_methods_responses_and_round_trips(llama_soup64, tmp_path):
    soup = llama_soup64
    spec = spec_of(soup)
    ds = evaluate_grid(soup, spec, batch_size=5)
    methods = methods_of(ds)
    texts = row_texts(ds)
    scheduler = Scheduler(soup)
    try:
        for m in (0, 1, 7, 8):  # a corner and a mix of two, under each method
            mix, method = mix_dict(ds, m), methods[m]
            if method == "soup":
                expected = generate(soup, list(PROMPTS), mix, config=spec.sampling).texts
            else:
                expected = scheduler.generate(list(PROMPTS), mix, config=spec.sampling, method="mod").texts
            assert texts[m, :, 0].tolist() == expected, (m, method)
    finally:
        scheduler.close()
    # a one-hot mix is the same response under both methods; a two-adapter mix generally is not
    assert texts[0, :, 0].tolist() == texts[7, :, 0].tolist()
    by_method = hypervolume_by_method(ds)
    assert set(by_method) == {"soup", "mod"} and all(lo <= hv <= hi for hv, lo, hi in by_method.values())
    back = load_results(save_results(ds, tmp_path / "front.nc"))
    assert methods_of(back) == methods and hypervolume_by_method(back) == by_method


def write_killer(folder) -> str:
    """A scorer file that kills its own process (SIGKILL) at its third call when the flag exists."""
    path = folder / "killer.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import os, signal
            FLAG, COUNT = {str(folder / "kill.flag")!r}, {str(folder / "calls")!r}

            def letters(prompts, responses):
                if os.path.exists(FLAG):
                    n = int(open(COUNT).read()) + 1 if os.path.exists(COUNT) else 1
                    open(COUNT, "w").write(str(n))
                    if n == 3:
                        os.remove(FLAG)
                        os.kill(os.getpid(), signal.SIGKILL)
                return [float(sum(c.isalpha() for c in r)) for r in responses]
            """
        )
    )
    return f"{path}:letters"


def test_a_two_method_grid_killed_midway_resumes_to_the_uninterrupted_results(llama_files, tmp_path):
    base, adapters = llama_files
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    scorer = write_killer(tmp_path)
    argv = ["grid", "--base", str(base), "--device", "cpu", "--dtype", "float64", "--prompts", str(prompts)]
    argv += ["--resolution", "2", "--max-new-tokens", "6", "--batch-size", "3", "--method", "soup,mod"]
    argv += ["--objective", "concise", "--objective", scorer]
    argv += [f"--adapter={n}={p}" for n, p in adapters.items()]
    env = {**os.environ, "PSE_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "kill.flag").write_text("")
    code = "import sys; from explorer.cli import main; sys.exit(main(sys.argv[1:]))"
    killed = subprocess.run(
        [sys.executable, "-c", code, *argv, "--out", str(tmp_path / "a.nc")], env=env, capture_output=True
    )
    assert killed.returncode == -9  # SIGKILL mid-run: two chunks journaled, nothing written
    assert not (tmp_path / "a.nc").exists()
    resumed = subprocess.run(
        [sys.executable, "-c", code, *argv, "--out", str(tmp_path / "a.nc")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert main([*argv, "--no-cache", "--out", str(tmp_path / "b.nc")]) == 0
    a, b = load_results(tmp_path / "a.nc"), load_results(tmp_path / "b.nc")
    assert methods_of(a) == methods_of(b) and set(methods_of(a)) == {"soup", "mod"}
    assert (row_texts(a) == row_texts(b)).all()
    np.testing.assert_array_equal(a["score"].values, b["score"].values)


@pytest.fixture(scope="module")
def two_method_front(llama_soup64, tmp_path_factory):
    ds = evaluate_grid(llama_soup64, spec_of(llama_soup64), batch_size=7)
    return save_results(ds, tmp_path_factory.mktemp("front") / "front.nc")


def test_pick_chooses_within_one_method_or_across_them(two_method_front, tmp_path, capsys):
    front = str(two_method_front)
    assert (
        main(["pick", "--frontier", front, "--maximize", "letters", "--out", str(tmp_path / "any.json")]) == 0
    )
    across = capsys.readouterr().out
    for method in ("soup", "mod"):
        out = tmp_path / f"{method}.json"
        assert (
            main(
                ["pick", "--frontier", front, "--maximize", "letters", "--method", method, "--out", str(out)]
            )
            == 0
        )
        printed = capsys.readouterr().out
        choice = json.loads(out.read_text())
        assert choice["mixing"] == method and f"({method}):" in printed
        assert methods_of(load_results(front))[choice["index"]] == method
    best = json.loads((tmp_path / "any.json").read_text())
    per_method = [
        json.loads((tmp_path / f"{m}.json").read_text())["scores"]["letters"] for m in ("soup", "mod")
    ]
    assert best["scores"]["letters"] == max(per_method) and "mix" in across
    assert main(["pick", "--frontier", front, "--knee", "--method", "blend"]) == 2
    assert "unknown method 'blend'" in capsys.readouterr().err
    assert main(["pick", "--frontier", front, "--knee", "--method", "ties"]) == 2
    assert "no mix of method 'ties' in these results" in capsys.readouterr().err


def test_a_mod_choice_is_not_exported_and_the_message_offers_the_soup(
    two_method_front, llama_files, tmp_path, capsys
):
    out = tmp_path / "mod.json"
    argv = ["pick", "--frontier", str(two_method_front), "--maximize", "letters", "--method", "mod"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "no single adapter" in capsys.readouterr().out
    base, adapters = llama_files
    export = ["export", "--base", str(base), "--choice", str(out), "--out", str(tmp_path / "mix")]
    export += [f"--adapter={n}={p}" for n, p in adapters.items()]
    assert main(export) == 2
    err = capsys.readouterr().err
    assert "decoding time" in err and "--weights helpful=" in err and not (tmp_path / "mix").exists()


def test_results_written_before_methods_join_new_ones_as_soup(two_method_front):
    """A cached soup front from before methods existed has no method coordinate: it still joins."""
    from explorer.frontier.results import concat_results

    new = load_results(two_method_front)
    soups = np.flatnonzero(np.array(methods_of(new)) == "soup")
    old = new.isel(mix=soups).drop_vars("method")
    assert "method" not in old.coords and methods_of(old) == ["soup"] * len(soups)
    joined = concat_results([old, new])
    assert methods_of(joined)[: len(soups)] == ["soup"] * len(soups) and "mod" in methods_of(joined)


def test_a_method_not_measured_yet_has_no_hypervolume(llama_soup64):
    """A partial grid whose mod mixes have no row yet reports NaN for mod, not a zero volume."""
    import threading

    from explorer.frontier.results import summarize

    spec = spec_of(llama_soup64)
    cancel = threading.Event()
    seen = []

    def stop_after_first(partial, progress):
        seen.append(progress.rows_done)
        cancel.set()

    ds = evaluate_grid(llama_soup64, spec, batch_size=4, cancel=cancel, on_chunk=stop_after_first)
    hv = hypervolume_by_method(summarize(ds))
    assert seen and np.isnan(hv["mod"]).all() and np.isfinite(hv["soup"][0])
