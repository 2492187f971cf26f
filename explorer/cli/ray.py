"""``explorer grid --ray``: the Ray workers the options ask for (``--ray``, ``--workers``,
``--gpus-per-worker``, defined with the other shared options in ``explorer.options``) and the
progress bar's text (rows/s, time left, workers alive).

explorer grid --out front.nc --ray local --workers 2
explorer grid --out front.nc --ray 10.0.0.5:6379 --gpus-per-worker 1
"""

from __future__ import annotations

import functools

from explorer.config import ModelOptions
from explorer.distributed import RayExecutor, RayOptions
from explorer.frontier.evaluation import Progress
from explorer.launch import open_soup
from explorer.options import add_ray_args, ray_options_from_args

__all__ = ["add_ray_args", "progress_text", "ray_options_from_args", "start_ray"]


def start_ray(options: ModelOptions, ray: RayOptions) -> RayExecutor:
    """Ray workers that each load the soup ``options`` describe (checked before any generation)."""
    return RayExecutor.start(functools.partial(open_soup, options), ray)


def progress_text(progress: Progress) -> str:
    """Chunks, rows/s of this run, the time left and (on Ray) the workers alive."""
    new_rows = progress.rows_done - progress.resumed_rows
    rate = new_rows / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
    left = progress.rows_total - progress.rows_done
    eta = f"{left / rate:.0f} s" if rate > 0 else "?"
    text = f"chunk {progress.chunks_done}/{progress.chunks_total}, {rate:.3g} rows/s, ETA {eta}"
    if progress.workers_alive is not None:
        text += f", {progress.workers_alive} workers alive"
    return text
