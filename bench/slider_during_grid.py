"""First-token latency of a slider response: idle, during a grid, and during a grid that does not yield.

    python bench/slider_during_grid.py --repeats 9 --grid-tokens 48 --grid-batch 64 --window 10

One run, side by side, on the app's own engine (``explorer.app.engine.Engine``) over the demo:
(a) the response alone; (b) the same request while the background grid runs (the grid steps
aside between two decode steps, ``Engine.yield_to_interactive``); (c) the same while a grid
runs that does not yield (the old behaviour: the request waits for the chunk in flight). Each
request uses another mix and is made at a random moment inside a grid chunk. Times are from
the request to its first streamed token, as the app's "first token after" shows them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

from common import environment, finish, pick_device, pick_dtype


def first_token_s(engine, weights: dict[str, float], prompt: str, sampling) -> float:
    """Seconds from the request to its first streamed token (the rest is cancelled)."""
    cancel, first = threading.Event(), []
    start = time.perf_counter()

    def on_text(text: str) -> None:
        if not first:
            first.append(time.perf_counter() - start)
        cancel.set()

    engine.generate_stream(prompt, weights, sampling, cancel=cancel, on_text=on_text)
    return first[0]


def during_grid(
    engine, requests, prompt, sampling, grid_sampling, *, yields: bool, seed: int, window: float
) -> list[float]:
    """Latencies of ``requests``, each made at a random moment in the first ``window`` seconds of a
    grid's first chunk (the grid restarts for each request)."""
    rng = random.Random(seed)
    original = engine.yield_to_interactive
    if not yields:
        engine.yield_to_interactive = lambda cancel: None
    out = []
    try:
        for weights in requests:
            run = engine.start_grid(grid_sampling)  # a cancelled grid starts afresh
            while run.running and engine.soup.lock.acquire(blocking=False):
                engine.soup.lock.release()  # until the grid holds the model (inside a chunk)
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, window))
            out.append(first_token_s(engine, weights, prompt, sampling))
            engine.cancel_grid(run)
            engine.wait_grid()
    finally:
        engine.yield_to_interactive = original
    return out


def main(args: argparse.Namespace) -> dict:
    from explorer.app.engine import Engine
    from explorer.demo import demo_adapters, demo_base
    from explorer.objectives import get_objective
    from explorer.prompts import HELDOUT, read_prompts
    from explorer.sampling import SamplingConfig
    from explorer.soup import Soup

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    soup = Soup.load(demo_base(), demo_adapters(), device=device, dtype=dtype)
    prompts = read_prompts(HELDOUT)
    engine = Engine(
        soup,
        [get_objective(n) for n in soup.names],
        prompts=prompts,
        grid_prompts=prompts[: args.grid_prompts],
        resolution=args.resolution,
        grid_batch_size=args.grid_batch,
        export_dir=args.tmp,
        cache_dir=None,
    )
    rng = random.Random(0)
    requests = []
    for _ in range(args.repeats):
        w = [rng.random() for _ in soup.names]
        requests.append({n: v / sum(w) for n, v in zip(soup.names, w, strict=True)})
    sampling = SamplingConfig(max_new_tokens=8)
    grid_sampling = SamplingConfig(max_new_tokens=args.grid_tokens)
    prompt = prompts[0]
    first_token_s(engine, requests[0], prompt, sampling)  # warm-up
    idle = [first_token_s(engine, w, prompt, sampling) for w in requests]
    window = args.window
    yielding = during_grid(
        engine, requests, prompt, sampling, grid_sampling, yields=True, seed=1, window=window
    )
    blocking = during_grid(
        engine, requests, prompt, sampling, grid_sampling, yields=False, seed=1, window=window
    )
    base = statistics.median(idle)
    rows = [
        {
            "case": name,
            "median_s": statistics.median(v),
            "max_s": max(v),
            "x_idle": statistics.median(v) / base,
        }
        for name, v in [
            ("(a) idle", idle),
            ("(b) during a grid (yields between decode steps)", yielding),
            ("(c) during a grid that does not yield (waits for the chunk)", blocking),
        ]
    ]
    columns = [("case", "slider response", "s"), ("median_s", "first token s (median)", ".3f")]
    columns += [("max_s", "max s", ".3f"), ("x_idle", "x idle", ".2f")]
    report = {
        "environment": environment(device, dtype),
        "settings": vars(args) | {"tmp": None},
        "samples": {"idle": idle, "yielding": yielding, "blocking": blocking},
    }
    title = (
        f"First token of a slider response ({args.repeats} requests each), grid of {args.grid_prompts} "
        f"prompts x {args.grid_tokens} tokens in chunks of {args.grid_batch} rows"
    )
    return finish("slider_during_grid.json", title, rows, columns, report)


if __name__ == "__main__":
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--repeats", type=int, default=5, help="requests per case")
    p.add_argument("--grid-prompts", type=int, default=16)
    p.add_argument("--grid-tokens", type=int, default=48, help="max new tokens of the grid's rows")
    p.add_argument(
        "--grid-batch", type=int, default=64, help="rows per grid chunk (the app's default on a CPU)"
    )
    p.add_argument("--resolution", type=int, default=4)
    p.add_argument(
        "--window",
        type=float,
        default=10.0,
        help="each request comes at a uniformly random moment in the first WINDOW s of a grid chunk "
        "(a chunk of 64 rows x 48 tokens takes about 13 s on 2 CPU cores; its prompt pass, which "
        "cannot yield, the first 1-3 s)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        main(args)
