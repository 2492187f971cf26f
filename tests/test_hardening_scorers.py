"""Issue 25, item 8: a scorer's helper modules are part of its cache key, a scorer that scores no
response (NaN for every one) fails, and sys.exit inside a scorer is an error, not a silent exit 0."""

from __future__ import annotations

import sys

import pytest

from explorer.cli import main
from explorer.errors import SoupError
from explorer.frontier.cache import cache_key
from explorer.objectives import get_objective
from explorer.soup import Soup
from tests import test_hardening
from tests.test_hardening import cached_files, spec_of

soup_files, grid_argv = test_hardening.soup_files, test_hardening.grid_argv  # the same fixtures


def test_a_changed_helper_module_is_a_new_cache_key(soup_files, tmp_path):
    folder = tmp_path / "scorers"
    folder.mkdir()
    (folder / "lengths_helper.py").write_text("def measure(text):\n    return float(len(text))\n")
    scorer = folder / "lengthy.py"
    scorer.write_text(
        "from lengths_helper import measure\n\n"
        "def score(prompts, responses):\n    return [measure(r) for r in responses]\n"
    )
    before = get_objective(f"{scorer}:score")
    (folder / "lengths_helper.py").write_text("def measure(text):\n    return -float(len(text))\n")
    after = get_objective(f"{scorer}:score")
    sys.modules.pop("lengths_helper", None)
    soup = Soup.load(*soup_files, device="cpu")
    assert before.version != after.version
    assert cache_key(soup, spec_of(soup, before)) != cache_key(soup, spec_of(soup, after))


def test_a_scorer_without_helpers_keeps_its_key(tmp_path):
    from explorer.fingerprint import file_sha256

    scorer = tmp_path / "alone.py"
    scorer.write_text(
        "import math\n\ndef score(prompts, responses):\n    return [math.pi for r in responses]\n"
    )
    assert get_objective(f"{scorer}:score").version == "source:" + file_sha256(scorer)[:16]


def test_a_scorer_that_scores_no_response_fails_and_caches_nothing(grid_argv, tmp_path, capsys):
    scorer = tmp_path / "nan_scorer.py"
    scorer.write_text("def score(prompts, responses):\n    return [float('nan') for r in responses]\n")
    out = tmp_path / "a.nc"
    assert main([*grid_argv, "--objective", f"{scorer}:score", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'score' scored none of the" in err and "Traceback" not in err
    assert cached_files(tmp_path) == [] and not out.exists()


def test_sys_exit_inside_a_scorer_is_an_error(grid_argv, tmp_path, capsys):
    scorer = tmp_path / "exit_scorer.py"
    scorer.write_text("import sys\n\ndef score(prompts, responses):\n    sys.exit(0)\n")
    out = tmp_path / "a.nc"
    assert main([*grid_argv, "--objective", f"{scorer}:score", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "called sys.exit(0)" in err and "Traceback" not in err
    assert cached_files(tmp_path) == [] and not out.exists()


def test_an_objective_named_by_an_unsafe_folder_is_refused(tmp_path):
    from tests.tiny import write_tiny_reward_model

    folder = write_tiny_reward_model(tmp_path / "<b>rm", seed=0)
    with pytest.raises(SoupError, match="objective name"):
        get_objective(f"reward:{folder}")
