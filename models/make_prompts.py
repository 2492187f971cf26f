"""Write the demo adapters' training prompts: hand-written requests plus templates over topic lists.

    python -m models.make_prompts      # writes models/prompts/train.txt (deterministic)

The held-out prompts (explorer's heldout.txt, the app's grid prompts) are never trained on:
any generated prompt that equals a held-out one is dropped, and the script fails if one slips in.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
HAND_WRITTEN = HERE / "prompts" / "hand_written.txt"  # the first 161 prompts, written by hand
OUT = HERE / "prompts" / "train.txt"

TEMPLATES: dict[str, list[str]] = {
    "Compare {}.": [
        "bicycles and scooters for getting to work",
        "board games and video games",
        "mountains and beaches for a holiday",
        "writing by hand and typing",
        "renting a flat and buying a house",
        "cooking with gas and cooking with electricity",
        "swimming and running as exercise",
        "emails and phone calls",
        "apples and oranges as a snack",
        "working from home and working in an office",
        "public libraries and bookshops",
        "camping in a tent and staying in a hotel",
    ],
    "Explain how {} works.": [
        "a compass",
        "a thermometer",
        "a microwave oven",
        "a lighthouse",
        "a vaccine",
        "a solar panel",
        "a bicycle brake",
        "a washing machine",
        "a hot air balloon",
        "an elevator",
        "a library card system",
        "a traffic light",
    ],
    "Explain what {} is.": [
        "a volcano",
        "gravity",
        "a budget",
        "a habit",
        "the water cycle",
        "a democracy",
        "a food chain",
        "an ecosystem",
        "compound interest",
        "a calorie",
    ],
    "How do I {}?": [
        "fix a squeaky door",
        "make a simple vegetable soup",
        "remember people's names",
        "save money on groceries",
        "fall asleep faster",
        "start a journal",
        "teach my dog to sit",
        "make friends in a new city",
        "stop procrastinating",
        "sew a button back on",
        "prepare for a job interview",
        "organise my closet",
        "bake bread at home",
        "write a thank-you note",
        "learn to juggle",
        "care for a goldfish",
        "pack for a weekend trip",
        "start a vegetable garden",
        "clean my laptop keyboard",
        "say no politely",
    ],
    "Why do {}?": [
        "leaves change colour in autumn",
        "we yawn",
        "onions make us cry",
        "dogs wag their tails",
        "we have fingerprints",
        "ice cubes float",
        "we get hiccups",
        "the oceans taste salty",
        "cats like boxes",
        "people like music",
    ],
    "Write a short story about {}.": [
        "a robot who learns to paint",
        "a girl who finds a key in the snow",
        "a baker who bakes for the whole village",
        "a cat who wants to fly",
        "a lighthouse keeper and a lost ship",
        "two strangers sharing an umbrella",
        "a boy who plants a tree every year",
        "a dragon who is afraid of the dark",
        "a postman on his last day of work",
        "a family moving to a new country",
        "a turtle who enters a race",
        "a clock that stops at midnight",
    ],
    "Write a review of {}.": [
        "a small Italian restaurant",
        "a new smartphone",
        "a science museum for children",
        "a summer music festival",
        "a pair of running shoes",
        "a cooking class",
        "a history podcast",
        "a city bus tour",
        "a fantasy novel",
        "a coffee machine",
    ],
    "Give me advice on {}.": [
        "starting a new job",
        "keeping a long-distance friendship",
        "learning to cook",
        "studying for an exam",
        "adopting a cat",
        "running my first 5 km race",
        "talking to a shy child",
        "moving to a new flat",
        "taking better photos with my phone",
        "choosing a hobby",
    ],
    "Describe {}.": [
        "a busy market in the morning",
        "a quiet library on a rainy afternoon",
        "a walk through a forest in autumn",
        "your favourite meal",
        "a snowy village at night",
        "the first day at a new school",
        "a day at the zoo",
        "a thunderstorm over the sea",
    ],
    "Write a short poem about {}.": [
        "the moon",
        "rain on a window",
        "an old dog",
        "the ocean",
        "spring flowers",
        "a city at night",
        "home",
        "the first snow",
    ],
    "Write a message {}.": [
        "inviting my neighbours to a party",
        "thanking a colleague for their help",
        "congratulating a friend on a new baby",
        "apologising for missing a meeting",
        "asking my landlord to fix the heating",
        "welcoming a new team member",
    ],
    "What {}?": [
        "is the best way to start the day",
        "makes a good neighbour",
        "should I pack for a picnic",
        "are the benefits of walking every day",
        "can I cook with leftover rice",
        "makes a city nice to live in",
        "is a good gift for a grandmother",
        "should I know before adopting a dog",
    ],
}


def heldout() -> set[str]:
    from explorer.prompts import HELDOUT, read_prompts

    return set(read_prompts(HELDOUT))


def build() -> list[str]:
    hand = [line.strip() for line in HAND_WRITTEN.read_text().splitlines() if line.strip()]
    generated = [template.format(topic) for template, topics in TEMPLATES.items() for topic in topics]
    held = heldout()
    prompts: list[str] = []
    for p in hand + generated:
        if p not in prompts and p not in held:
            prompts.append(p)
    assert not set(prompts) & held, "a held-out prompt slipped into the training prompts"
    return prompts


if __name__ == "__main__":
    prompts = build()
    OUT.write_text("".join(p + "\n" for p in prompts))
    print(f"wrote {len(prompts)} prompts to {OUT}")
