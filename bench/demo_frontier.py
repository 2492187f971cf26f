"""The app's default frontier on the demo: how long it takes and whether it stands above the noise.

    python bench/demo_frontier.py            # writes bench/results/demo_frontier.json

Runs ``explorer grid`` with the app's defaults (``AppOptions``: its grid prompts, resolution and
chunk size; greedy, ``DEFAULT_MAX_NEW_TOKENS``) on the demo, with an empty cache, and reports
the wall time and, for the plot's default axes (the first two objectives) and every other pair,
the extent of the front on each axis (max - min of the front's mix means) against the median
half-width of the 95% bootstrap intervals of its points. The demo's acceptance bar: within 6 minutes on a 2-core
CPU, extent at least 3x the median half-width on each axis.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from explorer.frontier.results import front_in_plane, intervals, load_results, means, n_mixes, objective_names
from explorer.options import AppOptions
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS

RESULTS = Path(__file__).resolve().parent / "results" / "demo_frontier.json"


def main() -> dict:
    app = AppOptions()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "front.nc"
        cmd = [
            str(Path(sys.executable).with_name("explorer")),
            "grid",
            "--no-cache",  # the grid runs in full
            "--out",
            str(out),
            "--prompts-limit",
            str(app.grid_prompts),
            "--resolution",
            str(app.resolution),
            "--batch-size",
            str(app.grid_batch_size),
        ]
        load = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        ds = load_results(out)
        names = objective_names(ds)
        mean = means(ds)
        low, high = intervals(ds)
        planes = {}
        for i, x in enumerate(names):  # every plane the plot can draw; the default is the first
            for y in names[i + 1 :]:
                front = front_in_plane(ds, x, y)
                planes[f"{x} x {y}"] = {"front_mixes": len(front), "axes": {}}
                for name in (x, y):
                    k = names.index(name)
                    half = (high[front, k] - low[front, k]) / 2
                    extent = float(mean[front, k].max() - mean[front, k].min())
                    planes[f"{x} x {y}"]["axes"][name] = {
                        "front_extent": extent,
                        "median_ci_half_width": float(np.median(half)),
                        "ratio": extent / float(np.median(half)),
                    }
        default = f"{names[0]} x {names[1]}"
        report = {
            "grid_prompts": app.grid_prompts,
            "resolution": app.resolution,
            "grid_batch_size": app.grid_batch_size,
            "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
            "mixes": n_mixes(ds),
            "front_mixes": planes[default]["front_mixes"],
            "wall_s": round(wall, 1),
            "load_average_before": [round(v, 2) for v in load],
            "cpu_threads": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "default_plane": default,
            "axes": planes[default]["axes"],  # the plot's default axes
            "planes": planes,
        }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
