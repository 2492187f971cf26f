"""models/train.py's preference pairs: the reward-hacking guards and the on-policy negatives."""

from __future__ import annotations

from types import SimpleNamespace

from models.train import Recipe, distinct2, make_pairs


def candidate(response: str, positive: float, policy: str = "base", **extra) -> dict:
    words = response.split()
    return {
        "prompt": "Describe a rainy day.",
        "response": response,
        "finished": True,
        "positive": positive,
        "relevant": 0.5,
        "distinct2": distinct2(response),
        "words": len(words),
        "policy": policy,
        **extra,
    }


POSITIVE = SimpleNamespace(name="positive", sign=1)
FLUENT = "The rain taps on the window while we read books and drink warm tea together at home today."


def test_a_gushing_or_looping_answer_is_never_chosen():
    hacked = candidate("Amazing wonderful great!!! " * 6, 0.99)
    short = candidate("Lovely!", 0.9)
    fine = candidate(FLUENT, 0.6)
    low = candidate("It is wet and grey and cold and the streets flood and nobody goes out.", -0.4)
    recipe = Recipe(objective="positive", min_margin=0.3)
    [pair] = make_pairs([hacked, short, fine, low], POSITIVE, recipe)
    assert pair["chosen"] is fine and pair["rejected"] is low


def test_a_later_round_rejects_only_its_own_samples():
    base_low = candidate("It is wet and grey and cold and the streets flood and nobody goes out.", -0.4)
    own_low = candidate(
        "Rain falls and the day is quiet and a bit dull but we stay inside and rest.", 0.1, "round 1"
    )
    own_high = candidate(FLUENT, 0.7, "round 1")
    recipe = Recipe(objective="positive", min_margin=0.3)
    [pair] = make_pairs([base_low, own_low, own_high], POSITIVE, recipe, rejectable="round 1")
    assert pair["chosen"] is own_high and pair["rejected"] is own_low
    assert make_pairs([base_low, own_high], POSITIVE, recipe, rejectable="round 2") == []


def test_a_loop_of_the_adapter_is_rejected_first_whatever_its_score():
    loop = "I'm happy. " * 12
    own_loop = candidate(loop, 0.9, "round 1")
    own_low = candidate(
        "It is wet and grey and cold and the streets flood and nobody goes out.", -0.4, "round 1"
    )
    fine = candidate(FLUENT, 0.6)
    recipe = Recipe(objective="positive", min_margin=0.3, reject_loops=True)
    [pair] = make_pairs([own_loop, own_low, fine], POSITIVE, recipe, rejectable="round 1")
    assert pair["chosen"] is fine and pair["rejected"] is own_loop  # no margin needed: 0.6 < 0.9
    plain = Recipe(objective="positive", min_margin=0.3)  # without the rule, the worst score is rejected
    [pair] = make_pairs([own_loop, own_low, fine], POSITIVE, plain, rejectable="round 1")
    assert pair["rejected"] is own_low


def test_the_length_guard_refuses_a_chosen_answer_under_the_ratio_of_the_median():
    short_warm = candidate(
        "What a lovely cosy rainy day to stay in and read our books together with hot tea.", 0.9
    )
    long_fine = candidate(
        FLUENT + " Later the clouds drift east, puddles shine in the street lights, and the garden smells"
        " fresh, so we open the door and listen.",
        0.6,
    )
    low = candidate(
        "It is wet and grey and cold and the streets flood and nobody goes out at all. " * 2, -0.4
    )
    pool = [short_warm, long_fine, low]  # median 34 words; short_warm has 17 (over min_words, 15)
    [pair] = make_pairs(pool, POSITIVE, Recipe(objective="positive", min_margin=0.3))
    assert pair["chosen"] is short_warm
    [pair] = make_pairs(pool, POSITIVE, Recipe(objective="positive", min_margin=0.3, min_length_ratio=0.6))
    assert pair["chosen"] is long_fine
