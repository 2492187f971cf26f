"""The scheduler that owns the soup: shared batches, exact rows, cancellation, priorities, bad input."""

from __future__ import annotations

import threading

import pytest

from explorer.errors import SoupError
from explorer.sampling import SamplingConfig, generate
from explorer.scheduler import Cancelled, Priority, Scheduler

PROMPTS = ["Why is the sky blue?", "Write a story about a cat", "Hi", "Give me one tip"]
SAMPLED = SamplingConfig(12, temperature=0.8, top_p=0.9, seed=3)


def mixes_of(names):
    rows = [(1.0, 0.0, 0.0), (0.3, 0.7, 0.0), (0.0, 0.0, 0.0), (-0.5, 1.5, 0.2)]
    return [dict(zip(names, r, strict=True)) for r in rows]


@pytest.fixture
def scheduler(soup64):
    s = Scheduler(soup64)
    yield s
    s.close()


@pytest.mark.parametrize("config", [SamplingConfig(12), SAMPLED], ids=["greedy", "sampled"])
def test_rows_equal_generate_alone_and_batched(soup64, scheduler, config):
    mixes = mixes_of(soup64.names)
    batched = generate(soup64, PROMPTS, mixes, config=config)
    out = scheduler.generate(PROMPTS, mixes, config=config)
    assert out.token_ids == batched.token_ids and out.texts == batched.texts
    for prompt, mix, ids in zip(PROMPTS, mixes, out.token_ids, strict=True):
        assert generate(soup64, [prompt], mix, config=config).token_ids[0] == ids


def test_requests_joining_a_running_batch_are_exact(soup64, scheduler):
    """Rows admitted while others decode are merged into their batch (left-padded caches)."""
    mixes = mixes_of(soup64.names)
    started = threading.Event()
    first = scheduler.submit(PROMPTS[0], mixes[0], SamplingConfig(40), on_text=lambda t: started.set())
    assert started.wait(60)
    later = [scheduler.submit(p, m, SAMPLED) for p, m in zip(PROMPTS[1:], mixes[1:], strict=True)]
    outs = [t.result(60) for t in [first, *later]]
    assert max(rows for kind, _, rows in scheduler.history if kind == "step") >= 2  # they shared steps
    assert (
        outs[0].token_ids == generate(soup64, PROMPTS[:1], mixes[0], config=SamplingConfig(40)).token_ids[0]
    )
    for prompt, mix, out in zip(PROMPTS[1:], mixes[1:], outs[1:], strict=True):
        assert out.token_ids == generate(soup64, [prompt], mix, config=SAMPLED).token_ids[0]


def test_cancel_stops_a_row_at_its_next_step_and_frees_it(soup64, scheduler):
    seen: list[str] = []
    cancel = threading.Event()

    def on_text(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            cancel.set()

    ticket = scheduler.submit(PROMPTS[0], None, SamplingConfig(50), on_text=on_text, cancel=cancel)
    out = ticket.result(60)
    assert out.cancelled and not out.finished
    assert len(out.token_ids) == 3  # one more step at most was never taken: it stopped at once
    assert scheduler.wait_idle()
    assert scheduler.generate(
        PROMPTS[:1], dict.fromkeys(soup64.names, 0.0), config=SamplingConfig(4)
    ).token_ids  # still serves


def test_a_cancelled_generate_raises_and_leaves_no_rows(soup64, scheduler):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        scheduler.generate(PROMPTS, dict.fromkeys(soup64.names, 0.0), config=SamplingConfig(8), cancel=cancel)
    assert scheduler.wait_idle()


def test_stop_strings_end_the_response_before_them(soup64, scheduler):
    full = scheduler.submit(PROMPTS[1], None, SamplingConfig(30), on_text=lambda t: None).result(60)
    assert len(full.text) > 4
    stop = full.text[2:4]
    cut = scheduler.submit(PROMPTS[1], None, SamplingConfig(30), stop=[stop]).result(60)
    assert cut.finished and cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]


def test_urgent_lanes_run_first(soup64, scheduler):
    """Grid rows queued behind a person's are not prefilled until the person's rows end."""
    hold, release = threading.Event(), threading.Event()
    blocker = scheduler.submit(
        PROMPTS[0], None, SamplingConfig(2), on_text=lambda t: (hold.set(), release.wait(60))
    )
    assert hold.wait(60)
    start = len(scheduler.history)
    grid = scheduler.submit(PROMPTS[1], None, SamplingConfig(3), priority=Priority.GRID)
    person = scheduler.submit(PROMPTS[2], None, SamplingConfig(3))
    release.set()
    for t in (blocker, grid, person):
        t.result(60)
    lanes = [p for _, p, _ in list(scheduler.history)[start:]]
    assert lanes.index(Priority.GRID) > max(i for i, p in enumerate(lanes) if p == Priority.INTERACTIVE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": "  "}, "empty"),
        ({"prompt": "Hi", "weights": {"nope": 1.0}}, "not adapters"),
        ({"prompt": "Hi", "weights": {"helpful": 1e9}}, "beyond"),
        ({"prompt": "Hi", "sampling": SamplingConfig(10_000)}, "context"),
        ({"messages": []}, "no messages"),
        ({"prompt": "Hi", "stop": [""]}, "stop strings"),
    ],
)
def test_bad_requests_are_refused_at_submit_with_a_message(scheduler, kwargs, match):
    with pytest.raises(SoupError, match=match):
        scheduler.submit(**{"sampling": SamplingConfig(8), **kwargs})
    assert scheduler.wait_idle()


def test_a_closed_scheduler_refuses_requests(soup64):
    s = Scheduler(soup64)
    s.close()
    with pytest.raises(SoupError, match="closed"):
        s.submit("Hi")
