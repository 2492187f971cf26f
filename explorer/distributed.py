"""The frontier grid on a Ray cluster: one Ray actor per worker loads the soup once and generates
and scores the chunks it is given; the driver (``explorer.frontier.evaluation.run_grid``) keeps the journal,
the cache and the results exactly as a local run does, so cache keys, resume and the netCDF file
are the same, and so are the results (every chunk holds the same rows as in a local run).

    explorer grid ... --ray local              # start Ray inside this process (one machine)
    explorer grid ... --ray auto               # the Ray already running here (ray start --head)
    explorer grid ... --ray 10.0.0.5:6379      # a cluster's head node

A worker that dies (killed, out of memory, its node lost) loses only its chunk in flight: the chunk
goes back to the queue and the next free worker takes it, while Ray restarts the dead worker's
process (which loads the soup again) and it rejoins. Cancelling stops every worker at its next
decoding step. Ray is an optional extra: ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.errors import SoupError
from explorer.frontier.evaluation import ChunkResult, LocalExecutor, Row, cancel_criteria, run_chunk
from explorer.frontier.grid import GridSpec
from explorer.soup import Soup


def _ray() -> Any:
    """Ray, imported when first used: the optional extra (without it, --ray says how to install
    it); importing it takes seconds and can log INFO lines, which the app and the notebook, that
    never use it without --ray, should not pay for."""
    import ray

    return ray


INSTALL = "pip install -e '.[ray]'"
RESTARTS = 2  # Ray restarts a dead worker's process (reloading the soup) this many times
ATTEMPTS = 3  # a chunk whose worker died is tried this many times in all, on whichever worker is free
LOCAL_ADDRESSES = ("auto", "local")


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: the cluster address, the workers and their resources."""

    address: str = "auto"  # auto | local | HOST:PORT | ray://HOST:PORT
    workers: int | None = None  # None: one per GPU-share (with GPUs) or per CPU of the cluster
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def __post_init__(self) -> None:
        if not str(self.address).strip():
            raise SoupError("--ray needs an address: auto, local, or the head node's HOST:PORT")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise SoupError(f"--workers must be a whole number >= 1, got {self.workers!r}")
        if not self.gpus_per_worker >= 0:
            raise SoupError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker!r}")
        if not self.cpus_per_worker > 0:
            raise SoupError(f"CPUs per worker must be > 0, got {self.cpus_per_worker!r}")


def ray_installed() -> bool:
    """Whether the optional extra is installed (without importing it)."""
    return importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    """Refuse, with the command that fixes it, when Ray is not installed."""
    if not ray_installed():
        raise SoupError(f"--ray needs Ray, which is not installed here: {INSTALL}")


def host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` -> (host, port); the port defaults to Ray's (6379, 10001)."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, 10001 if client else 6379
    if not port.isdigit():
        raise SoupError(f"--ray {address}: the port must be a number, as in 10.0.0.5:6379")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an address nothing answers at, before Ray spends minutes retrying it."""
    host, port = host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        raise SoupError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}): start its head with "
            "`ray start --head` there and check that the port is open from here, or run on this "
            "machine with --ray local"
        ) from None


def connect(address: str) -> None:
    """Connect this process to Ray at ``address`` (reusing a connection already made in Python)."""
    require_ray()
    ray = _ray()
    if address not in LOCAL_ADDRESSES:
        check_reachable(address)
    if ray.is_initialized():
        return
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        hint = "start one with `ray start --head`, or use --ray local" if address == "auto" else ""
        raise SoupError(f"cannot connect to the Ray cluster at {address}: {err} {hint}".strip()) from None


def plan_workers(options: RayOptions, resources: dict[str, float]) -> int:
    """How many workers to start on a cluster with ``resources`` (``ray.cluster_resources()``);
    refuses what the cluster cannot hold, since such workers would wait forever."""
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    g, c = options.gpus_per_worker, options.cpus_per_worker
    if g > 0 and gpus < g:
        raise SoupError(
            f"--gpus-per-worker {g:g}: the Ray cluster has {gpus:g} GPUs ({cpus:g} CPUs); add GPU "
            "nodes (`ray start --num-gpus N ...`) or leave out --gpus-per-worker to run on CPUs"
        )
    if options.workers is not None:
        n = options.workers
    elif g > 0:
        n = int(gpus // g)
    else:
        n = max(1, int(cpus // c))
    if n * g > gpus or n * c > cpus:
        raise SoupError(
            f"{n} workers x ({g:g} GPUs, {c:g} CPUs) do not fit the Ray cluster's {gpus:g} GPUs and "
            f"{cpus:g} CPUs: pass fewer --workers"
        )
    return n


class SoupWorker:
    """One Ray worker: loads the soup once (again after a restart) and runs chunks on it."""

    def __init__(self, load: Callable[[], Soup]):
        self.local: LocalExecutor | None = None
        self.error: str | None = None
        self.spec_id: str | None = None
        self.spec: GridSpec | None = None
        try:
            self.local = LocalExecutor(load())
        except SoupError as err:
            self.error = str(err)
        except Exception as err:  # reported to the driver, which stops with the message
            self.error = f"{type(err).__name__}: {err}"

    def info(self, fingerprint: bool = True) -> dict[str, Any]:
        """Where it runs, what it loaded (or why it could not)."""
        ray = _ray()
        out: dict[str, Any] = {
            "error": self.error,
            "node": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }
        if self.local is not None:
            soup = self.local.soup
            out.update(names=soup.names, device=str(soup.device), dtype=str(soup.dtype))
            if fingerprint:
                out["fingerprint"] = self.local.fingerprint()
        return out

    def plan(self, spec: GridSpec) -> list[Row]:
        return self._local().plan(spec)

    def batch_size(self, spec: GridSpec) -> int:
        return self._local().batch_size(spec)

    def run(self, spec_id: str, box: list, chunk: Sequence[Row]) -> ChunkResult:
        """Generate and score one chunk; ``box`` holds the spec's object ref, fetched once per run.
        A ``ray.cancel`` of this task stops it at the next decoding step."""
        ray = _ray()
        if spec_id != self.spec_id:
            self.spec, self.spec_id = ray.get(box[0]), spec_id
        assert self.spec is not None
        stop = cancel_criteria(ray.get_runtime_context().is_canceled)
        return run_chunk(self._local().soup, self.spec, chunk, stop)

    def _local(self) -> LocalExecutor:
        if self.local is None:
            raise SoupError(self.error or "the worker has no soup")
        return self.local


def _unwrap(err: Exception) -> Exception:
    """The user's error inside a Ray task error (a SoupError keeps its message, without Ray's trace)."""
    cause = getattr(err, "cause", None)
    return SoupError(str(cause)) if isinstance(cause, SoupError) else err


class RayExecutor:
    """Runs a grid's chunks on Ray workers (``explorer.frontier.evaluation.ChunkExecutor``).

    ``RayExecutor.start(load, options)`` connects, checks the cluster's resources, starts the
    workers and waits until each has loaded the soup (``load()`` runs on the worker: every node
    needs the model and adapter folders at the same paths). Use it as a context manager, or call
    ``close()``, to stop the workers.
    """

    def __init__(self, workers: list, infos: list[dict[str, Any]]):
        self.workers = workers
        self.infos = infos
        self.names: tuple[str, ...] = tuple(infos[0]["names"])
        self._fingerprint: dict = infos[0]["fingerprint"]
        self.alive = set(range(len(workers)))
        self.lost_chunks = 0  # chunks whose worker died under them (each retried elsewhere)

    @classmethod
    def start(cls, load: Callable[[], Soup], options: RayOptions) -> RayExecutor:
        connect(options.address)
        ray = _ray()
        n = plan_workers(options, ray.cluster_resources())
        actor: Any = ray.remote(SoupWorker).options(
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker,
            max_restarts=RESTARTS,
            max_task_retries=0,  # the driver re-queues a lost chunk for whichever worker is free
        )
        workers: list[Any] = [actor.remote(load) for _ in range(n)]
        try:
            infos = ray.get([w.info.remote() for w in workers])
            check_workers(infos)
        except BaseException:
            for w in workers:
                ray.kill(w)
            raise
        return cls(workers, infos)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (their processes exit; the cluster stays up)."""
        ray = _ray()
        for w in self.workers:
            ray.kill(w)
        self.alive.clear()

    def describe(self) -> str:
        first = self.infos[0]
        nodes = len({i["node"] for i in self.infos})
        return f"{len(self.workers)} Ray workers on {nodes} node(s), {first['device']} ({first['dtype']})"

    # -- ChunkExecutor ------------------------------------------------------------------------

    def fingerprint(self) -> dict:
        return self._fingerprint

    def plan(self, spec: GridSpec) -> list[Row]:
        return self._ask("plan", spec)

    def batch_size(self, spec: GridSpec) -> int:
        return self._ask("batch_size", spec)

    def workers_alive(self) -> int | None:
        return len(self.alive)

    def run(
        self, spec: GridSpec, chunks: Sequence[Sequence[Row]], cancel: Any
    ) -> Iterator[tuple[int, ChunkResult]]:
        """Hand chunks to free workers, yield them as they finish; a chunk whose worker died goes
        back to the front of the queue. Leaving (cancel, an error, the caller stops) cancels the
        chunks in flight."""
        ray = _ray()
        box, spec_id = [ray.put(spec)], uuid.uuid4().hex
        queue: deque[int] = deque(range(len(chunks)))
        tries: Counter[int] = Counter()
        busy: dict[Any, tuple[int, int | None]] = {}  # ref -> (worker, chunk; None: waiting for a restart)
        idle = sorted(self.alive)
        try:
            while queue or busy:
                if cancel is not None and cancel.is_set():
                    return
                while queue and idle:
                    w, c = idle.pop(0), queue.popleft()
                    busy[self.workers[w].run.remote(spec_id, box, list(chunks[c]))] = (w, c)
                if not busy:
                    raise SoupError(
                        f"every Ray worker died ({len(self.workers)} started, each restarted up to "
                        f"{RESTARTS} times); see `ray status` and the workers' logs (out of memory?)"
                    )
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=0.5)
                for ref in ready:
                    worker, chunk = busy.pop(ref)
                    result = self._collect(ref, worker, chunk, busy, tries, queue)
                    if result is not None:
                        idle.append(worker)
                        if chunk is not None:
                            yield chunk, result
        finally:
            for ref, (_, in_flight) in busy.items():
                if in_flight is not None:
                    ray.cancel(ref)

    def _collect(self, ref, w: int, c: int | None, busy: dict, tries: Counter, queue: deque) -> Any:
        """The value of a finished task, or None when its worker died (its chunk is re-queued and
        the worker is waited for) or is gone for good."""
        from ray.exceptions import RayActorError, RayTaskError

        ray = _ray()
        try:
            value = ray.get(ref)
        except RayActorError as err:
            self.alive.discard(w)
            if c is None:  # it did not come back
                return None
            self.lost_chunks += 1
            tries[c] += 1
            if tries[c] >= ATTEMPTS:
                raise SoupError(
                    f"chunk {c} was lost with its worker {ATTEMPTS} times (last: {type(err).__name__}); "
                    "a worker may run out of memory on it: try a smaller --batch-size"
                ) from None
            queue.appendleft(c)
            probe = self.workers[w].info.options(max_task_retries=-1).remote(False)
            busy[probe] = (w, None)
            return None
        except RayTaskError as err:
            raise _unwrap(err) from None
        if c is None:  # a restarted worker is back, with its soup loaded again
            if value["error"]:
                return None
            self.alive.add(w)
        return value

    def _ask(self, method: str, spec: GridSpec) -> Any:
        """Call ``method(spec)`` on a live worker (what every worker would answer alike)."""
        from ray.exceptions import RayTaskError

        ray = _ray()
        worker = self.workers[min(self.alive)]
        try:
            return ray.get(getattr(worker, method).remote(spec))
        except RayTaskError as err:
            raise _unwrap(err) from None


def check_workers(infos: Sequence[dict[str, Any]]) -> None:
    """Every worker loaded the soup, and the same one (same files, names, dtype and device)."""
    for i, info in enumerate(infos):
        if info["error"]:
            raise SoupError(
                f"Ray worker {i} on node {info['node']} could not load the soup: {info['error']}. Every "
                "node needs the base model and adapter folders at the same paths (copy them, or use "
                "a shared file system)"
            )
    first = infos[0]
    for i, info in enumerate(infos[1:], start=1):
        for field in ("names", "fingerprint", "device", "dtype"):
            if info[field] != first[field]:
                raise SoupError(
                    f"Ray workers 0 ({first['node']}) and {i} ({info['node']}) loaded different soups "
                    f"(their {field} differ): every node needs the same model files, library versions "
                    "and kind of device"
                )
