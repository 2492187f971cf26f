"""Several people at once: first-token and total time per session, the scheduler against one-at-a-time.

    python bench/concurrent_users.py --sessions 1 3 6 --tokens 64

One run, side by side, on the demo (SmolLM2-135M and its three adapters), greedy:
(A) N sessions press Generate at the same moment, each with its own mix and prompt, ``--tokens``
    new tokens each: (a) through the scheduler (``explorer.scheduler.Scheduler``: the rows of all
    sessions decode in one batch), (b) one after another, as the app served them before (a lock
    around ``generate``). Per session: seconds to its first streamed token and to its last.
(B) A slider's response (8 tokens) idle and while a frontier grid runs (``--grid-rows`` rows of
    ``--grid-tokens`` tokens, resubmitted as they end): (a) the slider's row in the interactive
    lane (the grid's rows wait between two decode steps), (b) the slider's row joining the grid's
    batch (the other design the issue names). Seconds to the first token.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from common import environment, finish, pick_device, pick_dtype
from transformers.generation.streamers import BaseStreamer


class FirstToken(BaseStreamer):
    """Notes when ``generate`` streams its first new token (the first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.puts, self.at = 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2:
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


def mixes(names, n: int) -> list[dict[str, float]]:
    """``n`` different mixes on the simplex (one per session)."""
    out = []
    for i in range(n):
        raw = [1.0 + ((i + 1) * (j + 2)) % 5 for j in range(len(names))]
        out.append({name: w / sum(raw) for name, w in zip(names, raw, strict=True)})
    return out


def with_scheduler(scheduler, prompts, weights, sampling) -> list[tuple[float, float]]:
    """(first token s, total s) per session, all submitted at the same moment."""
    start = time.perf_counter()
    firsts: dict[int, float] = {}
    tickets = []
    for i, (prompt, mix) in enumerate(zip(prompts, weights, strict=True)):

        def on_text(text: str, i: int = i) -> None:
            firsts.setdefault(i, time.perf_counter() - start)

        tickets.append(scheduler.submit(prompt, mix, sampling, on_text=on_text))
    totals = []
    for t in tickets:
        t.result()
        totals.append(time.perf_counter() - start)
    return [(firsts[i], totals[i]) for i in range(len(tickets))]


def one_after_another(soup, prompts, weights, sampling) -> list[tuple[float, float]]:
    """The same sessions served as before the scheduler: each waits for the lock, then generates."""
    from explorer.sampling import generate

    lock = threading.Lock()
    start = time.perf_counter()
    out: dict[int, tuple[float, float]] = {}

    def session(i: int) -> None:
        streamer = FirstToken()
        with lock:
            generate(soup, [prompts[i]], weights[i], config=sampling, streamer=streamer)
        out[i] = ((streamer.at or time.perf_counter()) - start, time.perf_counter() - start)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[i] for i in range(len(prompts))]


def first_token(scheduler, prompt, mix, sampling, priority) -> float:
    start, first = time.perf_counter(), []
    cancel = threading.Event()

    def on_text(text: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)
        cancel.set()

    scheduler.submit(prompt, mix, sampling, on_text=on_text, cancel=cancel, priority=priority).result()
    return first[0]


def slider_during_grid(scheduler, prompts, weights, args) -> dict[str, list[float]]:
    from explorer.sampling import SamplingConfig
    from explorer.scheduler import Priority

    slider = SamplingConfig(max_new_tokens=8)
    grid = SamplingConfig(max_new_tokens=args.grid_tokens)
    out: dict[str, list[float]] = {"idle": [], "preempt": [], "join": []}
    for i in range(args.repeats):
        out["idle"].append(
            first_token(scheduler, prompts[0], weights[i % len(weights)], slider, Priority.INTERACTIVE)
        )
    stop = threading.Event()

    def keep_grid_busy(k: int) -> None:  # one grid row, resubmitted as it ends
        n = 0
        while not stop.is_set():
            scheduler.submit(
                prompts[(k + n) % len(prompts)], weights[k % len(weights)], grid, priority=Priority.GRID
            ).result()
            n += 1

    feeders = [threading.Thread(target=keep_grid_busy, args=(k,), daemon=True) for k in range(args.grid_rows)]
    for t in feeders:
        t.start()
    try:
        time.sleep(args.grid_warmup)
        for i in range(args.repeats):
            for case, priority in (("preempt", Priority.INTERACTIVE), ("join", Priority.GRID)):
                time.sleep(0.37)  # a moment inside the grid's decoding, not aligned with its steps
                mix = weights[i % len(weights)]
                out[case].append(first_token(scheduler, prompts[0], mix, slider, priority))
    finally:
        stop.set()
        for t in feeders:
            t.join()
    return out


def main(args: argparse.Namespace) -> dict:
    from explorer.demo import demo_adapters, demo_base
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import SamplingConfig
    from explorer.scheduler import Scheduler
    from explorer.soup import Soup

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    soup = Soup.load(demo_base(), demo_adapters(), device=device, dtype=dtype)
    scheduler = Scheduler(soup)
    prompts = read_prompts(HELDOUT)
    sampling = SamplingConfig(max_new_tokens=args.tokens)
    weights = mixes(soup.names, max(args.sessions))
    with_scheduler(scheduler, prompts[:1], weights[:1], SamplingConfig(max_new_tokens=4))  # warm-ups
    one_after_another(soup, prompts[:1], weights[:1], SamplingConfig(max_new_tokens=4))
    rows, samples = [], {}
    for n in args.sessions:
        for case, run, model in (
            ("scheduler", with_scheduler, scheduler),
            ("one after another", one_after_another, soup),
        ):
            runs = [run(model, prompts[:n], weights[:n], sampling) for _ in range(args.runs)]
            runs.sort(key=lambda t: max(x for _, x in t))
            times = runs[len(runs) // 2]  # the run with the median slowest total
            samples[f"{case} x{n}"] = runs
            rows.append(
                {
                    "case": f"{n} session(s), {case}",
                    "first_max": max(f for f, _ in times),
                    "first_median": statistics.median(f for f, _ in times),
                    "total_max": max(t for _, t in times),
                    "total_median": statistics.median(t for _, t in times),
                }
            )
    alone = next(r["total_max"] for r in rows if r["case"] == "1 session(s), scheduler")
    for r in rows:
        r["x_alone"] = r["total_max"] / alone
    slider = slider_during_grid(scheduler, prompts, weights, args)
    idle = statistics.median(slider["idle"])
    for case, label in (
        ("idle", "slider first token, idle"),
        ("preempt", f"slider first token, grid running ({args.grid_rows} rows): interactive lane"),
        ("join", f"slider first token, grid running ({args.grid_rows} rows): joins the grid's batch"),
    ):
        v = slider[case]
        rows.append(
            {
                "case": label,
                "first_max": max(v),
                "first_median": statistics.median(v),
                "x_idle": statistics.median(v) / idle,
            }
        )
    scheduler.close()
    columns = [
        ("case", "case", "s"),
        ("first_median", "first token s (median)", ".2f"),
        ("first_max", "first token s (slowest)", ".2f"),
        ("total_median", "total s (median)", ".2f"),
        ("total_max", "total s (slowest)", ".2f"),
        ("x_alone", "slowest total / 1 alone", ".2f"),
        ("x_idle", "x idle", ".2f"),
    ]
    report = {
        "benchmark": "concurrent_users",
        "environment": environment(device, dtype),
        "settings": vars(args),
        "samples": samples | {f"slider {k}": v for k, v in slider.items()},
    }
    title = f"Concurrent sessions on the demo, {args.tokens} new tokens each, greedy"
    return finish("concurrent_users.json", title, rows, columns, report)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 3, 6])
    p.add_argument("--tokens", type=int, default=64, help="new tokens per session")
    p.add_argument("--runs", type=int, default=3, help="runs of each case in (A); the median one is shown")
    p.add_argument("--repeats", type=int, default=5, help="slider requests per case in (B)")
    p.add_argument("--grid-rows", type=int, default=16, help="grid rows decoding at once in (B)")
    p.add_argument("--grid-tokens", type=int, default=48, help="new tokens per grid row in (B)")
    p.add_argument("--grid-warmup", type=float, default=3.0, help="seconds of grid before the first slider")
    main(p.parse_args())
