"""One owner of the soup: a scheduler that decodes every caller's rows in shared batches.

Everything that generates (an app session's streamed response, pin refreshes, a mix's
measurement, frontier grid chunks, API requests) is a *request*: a prompt, its own mix, its own
decoding, a priority. ``Scheduler.submit`` answers with a ``Ticket`` whose ``future`` (a
``concurrent.futures.Future``) resolves to a ``Completion``. One thread runs the only decode loop:

    while anything waits or runs:
        admit the waiting requests into the lane of their priority (prefill them as one batch,
        draw their first token, then merge them into the lane's running batch);
        run one decode step of the most urgent lane that has rows; stream each row's text;
        retire rows that ended (EOS, length, a stop string) or were cancelled.

Rows with different mixes share one forward pass: the mix travels with the batch as per-row gates
(``Soup.mixed`` with one row of weights per batch row), never as soup-wide state behind a lock.
A new request joins the running batch of its lane at the next step (continuous batching: the
key/value caches are left-padded to a common length and concatenated along the batch). Lanes
preempt between decode steps: while interactive rows run, measurement and grid rows wait with
their caches kept, so a grid never delays a user by more than one of its decode steps.

The draws are the paired ones of ``explorer.sampling``: a row's token at step t depends only on
(seed, prompt, sample index, t) and its own logits, so a request's text is the same alone, in a
batch, or in a grid, up to the float numerics of batched matrix products.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from explorer.errors import SoupError
from explorer.methods import DECODING_METHODS, check_method
from explorer.mix import check_mix
from explorer.sampling import (
    Generations,
    SamplingConfig,
    check_prompt_lengths,
    check_rows,
    encode_messages,
    encode_prompts,
    next_tokens,
    row_keys,
    stop_token_ids,
)
from explorer.soup import Soup, Weights

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower is more urgent. A lane runs only while every more urgent lane is empty."""

    INTERACTIVE = 0  # a person waits on it: live responses, pins, API requests
    MEASURE = 1  # placing a mix among the grid's points
    GRID = 2  # frontier grids


@dataclass(frozen=True)
class Completion:
    """One request's answer."""

    text: str
    token_ids: list[int]  # generated tokens, the stopping EOS excluded
    finished: bool  # True: stopped at EOS or a stop string; False: cut by max_new_tokens (or cancelled)
    cancelled: bool = False  # the request was cancelled; ``text`` is what was generated until then
    prompt_tokens: int = 0  # tokens of the prompt as encoded (chat template included)

    @property
    def finish_reason(self) -> str:
        """OpenAI's words: ``stop`` (EOS or a stop string) or ``length``."""
        return "stop" if self.finished else "length"


@dataclass
class Ticket:
    """A submitted request: wait on ``future`` (or ``result()``), stop it with ``cancel()``.

    Cancelling a waiting request drops it; a running one stops at its next decode step and its
    future resolves to the partial ``Completion`` with ``cancelled=True``.
    """

    future: Future = field(default_factory=Future)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def result(self, timeout: float | None = None) -> Completion:
        """The completion (an empty cancelled one when the request was cancelled before it ran)."""
        try:
            return self.future.result(timeout)
        except CancelledError:
            return Completion(text="", token_ids=[], finished=False, cancelled=True)


@dataclass
class _Request:
    ids: list[int]  # the prompt's token ids
    prompt: str  # keys the paired draws
    gates: torch.Tensor  # (k, N) float64: the mix of each of the request's k batch rows
    coeffs: tuple[float, ...] | None  # mod: w_i of each row's log-probs; None: one soup row
    sampling: SamplingConfig
    sample_id: int
    priority: int
    stops: tuple[str, ...]
    on_text: Callable[[str], None] | None
    ticket: Ticket
    order: int  # submission order: ties between equal priorities go first come, first served


@dataclass
class _Row:
    """A request in a running batch: one response, decoded by ``members`` batch rows (1 for the
    soup; one per adapter for decoding-time mixing), which all take the same token."""

    request: _Request
    key: int  # paired-sampling key of (seed, prompt, sample)
    position: int  # position id of the next token fed (valid tokens so far)
    last: int = 0  # the token fed at the next step
    generated: list[int] = field(default_factory=list)
    text: str = ""

    @property
    def steps(self) -> int:
        return len(self.generated)

    @property
    def members(self) -> int:
        return self.request.gates.shape[0]


class _Batch:
    """Rows decoded together: their key/value cache (B, heads, T, head_dim) per layer, the
    attention mask (B, T) over it (0 on each row's left padding) and their mixes (B, N). A request
    of k members holds k consecutive batch rows; B = sum of the rows' members."""

    def __init__(self, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor, weights: torch.Tensor):
        self.rows, self.cache, self.mask, self.weights = rows, cache, mask, weights

    def mergeable(self) -> bool:
        """Plain key/value layers only (a sliding-window or linear-attention cache is not padded)."""
        return all(
            type(layer) is DynamicLayer and getattr(layer, "keys", None) is not None
            for layer in self.cache.layers
        )

    def _layers(self) -> list[Any]:
        """The cache's layers, each with ``keys`` and ``values`` (B, heads, T, head_dim)."""
        return list(self.cache.layers)

    def merge(self, other: _Batch) -> None:
        """Append ``other``'s rows: both caches left-padded to the longer one, then concatenated."""
        length = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self._layers(), other._layers(), strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, length, 2), _pad_left(theirs.keys, length, 2)])
            mine.values = torch.cat([_pad_left(mine.values, length, 2), _pad_left(theirs.values, length, 2)])
        self.mask = torch.cat([_pad_left(self.mask, length, 1), _pad_left(other.mask, length, 1)])
        self.weights = torch.cat([self.weights, other.weights])
        self.rows += other.rows

    def keep(self, kept: list[int]) -> None:
        """Keep only rows ``kept`` (indices into ``rows``) with their members' batch rows, and drop
        the leading cache columns no kept row attends to."""
        starts = [0]
        for row in self.rows:
            starts.append(starts[-1] + row.members)
        members = [b for i in kept for b in range(starts[i], starts[i + 1])]
        index = torch.tensor(members, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in kept]
        if not kept:  # the batch is done; its lane drops it
            return
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.weights = self.weights[members]
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        if start and self.mergeable():
            for layer in self._layers():
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
            self.mask = self.mask[:, start:]


def _pad_left(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """``x`` with zeros prepended along ``dim`` up to ``length``."""
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)


class Scheduler:
    """The only decode loop of a soup: submit requests from any thread; one thread runs them.

    ``max_rows``: the most rows a lane decodes at once (more wait their turn); default 64 on the
    CPU, 256 on a GPU.
    """

    def __init__(self, soup: Soup, *, max_rows: int | None = None):
        self.soup = soup
        self.max_rows = int(max_rows or (64 if soup.device.type == "cpu" else 256))
        self.stops = stop_token_ids(soup)
        self._waiting: list[_Request] = []
        self._lanes: dict[int, list[_Batch]] = {}
        self._wake = threading.Condition()
        self._order = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None
        # the last forward passes, oldest first: ("prefill" or "step", priority, rows)
        self.history: deque[tuple[str, int, int]] = deque(maxlen=10_000)

    # ------------------------------------------------------------------------------------------
    # submitting

    def submit(
        self,
        prompt: str | None = None,
        weights: Weights | None = None,
        sampling: SamplingConfig | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
        chat: bool = True,
        sample_id: int = 0,
        priority: int = Priority.INTERACTIVE,
        stop: Sequence[str] = (),
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        method: str = "soup",
    ) -> Ticket:
        """Queue one response to ``prompt`` (or to the chat ``messages``) under the mix ``weights``
        (one mix; adapters it leaves out, and every adapter when None, get weight 0), combined by
        ``method``: ``soup`` (the weights mixed, one batch row) or ``mod`` (decoding-time mixing:
        one batch row per adapter of non-zero weight, see ``member_rows``).

        ``chat``: wrap ``prompt`` in the chat template as one user turn (``generate``'s default).
        ``stop``: strings that end the response (not included). ``on_text(text_so_far)`` is called
        from the scheduler's thread after every token (keep it quick). ``cancel``: an event that
        cancels the request when set (as ``Ticket.cancel`` does). Bad input (an empty prompt, an
        unknown adapter, a weight out of bounds, a prompt too long) raises ``SoupError`` here.
        """
        if self._closed:
            raise SoupError("the scheduler is closed: the app or server is shutting down")
        sampling = sampling or SamplingConfig()
        if messages is not None:
            ids = encode_messages(self.soup.tokenizer, messages)
            key_text = (
                messages[0]["content"]
                if len(messages) == 1
                else "\n".join(f"{m['role']}: {m['content']}" for m in messages)
            )
        else:
            if not isinstance(prompt, str):
                raise SoupError(f"the prompt must be a string, got {type(prompt).__name__}")
            enc = encode_prompts(self.soup.tokenizer, [prompt], chat=chat)
            ids, key_text = enc["input_ids"][0].tolist(), prompt
        check_prompt_lengths(self.soup, [len(ids)], sampling.max_new_tokens)
        mix = torch.zeros(1, len(self.soup.names), dtype=torch.float64)
        if isinstance(weights, Mapping):  # adapters left out of one mix get weight 0
            weights = check_mix(weights, self.soup.names, missing=0.0)
        if weights is not None:
            mix = self.soup.weights_tensor(weights)
            if mix.shape[0] != 1:
                raise SoupError(f"one request takes one mix, got {mix.shape[0]}: submit one request per mix")
        gates, coeffs = member_rows(mix[0], method)
        if any(not isinstance(s, str) or not s for s in stop):
            raise SoupError(f"stop strings must be non-empty strings, got {list(stop)!r}")
        ticket = Ticket(cancel_event=cancel or threading.Event())
        request = _Request(
            ids=ids,
            prompt=key_text,
            gates=gates,
            coeffs=coeffs,
            sampling=sampling,
            sample_id=int(sample_id),
            priority=int(priority),
            stops=tuple(stop),
            on_text=on_text,
            ticket=ticket,
            order=next(self._order),
        )
        with self._wake:
            if self._closed:
                raise SoupError("the scheduler is closed: the app or server is shutting down")
            self._waiting.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="soup-scheduler", daemon=True)
                self._thread.start()
            self._wake.notify()
        return ticket

    def generate(
        self,
        prompts: Sequence[str],
        weights: Weights,
        *,
        config: SamplingConfig | None = None,
        sample_ids: Sequence[int] | None = None,
        priority: int = Priority.INTERACTIVE,
        cancel: threading.Event | None = None,
        chat: bool = True,
        method: str | Sequence[str] = "soup",
    ) -> Generations:
        """``explorer.sampling.generate`` through the scheduler: row b answers ``prompts[b]`` with
        mix ``weights[b]`` (or one mix for all), batched with whatever else runs. Blocks until
        every row ends; raises ``Cancelled`` when ``cancel`` was set before they all ended.
        ``method``: one for every row, or one per row."""
        config = config or SamplingConfig()
        w, sample_ids = check_rows(self.soup, prompts, weights, sample_ids)
        methods = [method] * len(prompts) if isinstance(method, str) else list(method)
        if len(methods) != len(prompts):
            raise SoupError(f"{len(methods)} methods given for {len(prompts)} prompts")
        cancel = cancel or threading.Event()
        tickets = []
        try:
            for b, prompt in enumerate(prompts):
                mix = w[b if w.shape[0] > 1 else 0]
                tickets.append(
                    self.submit(
                        prompt,
                        mix,
                        config,
                        sample_id=sample_ids[b],
                        priority=priority,
                        cancel=cancel,
                        chat=chat,
                        method=methods[b],
                    )
                )
            outs = [t.result() for t in tickets]
        except BaseException:
            for t in tickets:  # a failure (or an interrupt) leaves no orphan rows decoding
                t.cancel()
            raise
        if any(o.cancelled for o in outs):
            raise Cancelled
        return Generations(
            texts=[o.text for o in outs],
            token_ids=[o.token_ids for o in outs],
            finished=[o.finished for o in outs],
        )

    def close(self, timeout: float | None = 5.0) -> None:
        """Cancel everything and stop the loop's thread."""
        with self._wake:
            self._closed = True
            for r in self._waiting:
                r.ticket.cancel()
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        """Requests wait or run."""
        return bool(self._waiting) or any(b.rows for lane in list(self._lanes.values()) for b in list(lane))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing waits or runs (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # ------------------------------------------------------------------------------------------
    # the loop (one thread)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not any(self._lanes.values()):
                    self._wake.wait()
                if self._closed:
                    break
                admitted = self._admit()
            with torch.inference_mode():
                for priority, requests in admitted.items():
                    self._prefill(priority, requests)
                self._drop_cancelled()  # in every lane: a paused grid frees its rows too
                lane = min((p for p, batches in self._lanes.items() if batches), default=None)
                if lane is not None:
                    self._step(lane)
        self._close_all(SoupError("the scheduler was closed before this request ended"))

    def _admit(self) -> dict[int, list[_Request]]:
        """Take the waiting requests of the most urgent lane that has work, as many as fit it
        (``max_rows``); less urgent ones wait (a grid's prompts are not even prefilled while
        people's rows run)."""
        for r in self._waiting:
            if r.ticket.cancelled:
                r.ticket.future.cancel()
        self._waiting = [r for r in self._waiting if not r.ticket.future.cancelled()]
        busy = [p for p, batches in self._lanes.items() if batches] + [r.priority for r in self._waiting]
        if not busy:
            return {}
        top = min(busy)
        # batch rows, not responses: a MOD response decodes one row per adapter
        room = self.max_rows - sum(r.members for b in self._lanes.get(top, []) for r in b.rows)
        admitted: list[_Request] = []
        keep: list[_Request] = []
        for r in sorted(self._waiting, key=lambda r: (r.priority, r.order)):
            rows = r.gates.shape[0]
            fits = rows <= room or not (admitted or self._lanes.get(top))  # one always runs
            if r.priority != top or not fits:
                keep.append(r)
            elif r.ticket.future.set_running_or_notify_cancel():
                admitted.append(r)
                room -= rows
        self._waiting = keep
        return {top: admitted} if admitted else {}

    def _prefill(self, priority: int, requests: list[_Request]) -> None:
        """Run the prompts of ``requests`` as one left-padded batch, draw each row's first token,
        and merge the batch into the lane's running one. A failure fails these requests only."""
        batch: _Batch | None = None
        try:
            batch = self._forward_prompts(requests)
            self.history.append(("prefill", priority, len(batch.weights)))
            lane = self._lanes.setdefault(priority, [])
            if not batch.rows:
                return
            target = next((b for b in lane if b.mergeable()), None)
            if target is not None and batch.mergeable():
                target.merge(batch)
            else:
                lane.append(batch)
        except Exception as err:
            log.exception("prefill failed")
            for r in requests:
                _resolve_error(r.ticket, err)

    def _forward_prompts(self, requests: list[_Request]) -> _Batch:
        """The prompt pass of ``requests`` (each with its members' rows) and their first tokens."""
        soup = self.soup
        length = max(len(r.ids) for r in requests)
        pad = soup.tokenizer.pad_token_id or 0
        members = [r for r in requests for _ in range(r.gates.shape[0])]
        ids = torch.tensor([[pad] * (length - len(r.ids)) + r.ids for r in members], device=soup.device)
        mask = torch.tensor(
            [[0] * (length - len(r.ids)) + [1] * len(r.ids) for r in members], device=soup.device
        )
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        weights = torch.cat([r.gates for r in requests])  # (B, N)
        with soup.mixed(weights):
            out = soup.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=DynamicCache(config=soup.model.config),
                use_cache=True,
                logits_to_keep=1,  # the last position only, as ``generate`` does: (B, 1, V)
            )
        rows = [_Row(r, key=_row_key(r), position=len(r.ids)) for r in requests]
        batch = _Batch(rows, out.past_key_values, mask, weights)
        self._advance(batch, out.logits[:, -1, :])
        return batch

    def _resolve(self, row: _Row, *, finished: bool, cancelled: bool = False) -> None:
        future: Future[Any] = row.request.ticket.future
        if future.done():
            return
        if not row.request.stops and row.request.on_text is None:
            row.text = _decode(self.soup.tokenizer, row.generated)
        future.set_result(
            Completion(
                text=row.text,
                token_ids=list(row.generated),
                finished=finished,
                cancelled=cancelled,
                prompt_tokens=len(row.request.ids),
            )
        )

    def _step(self, priority: int) -> None:
        """One decode step of every batch of lane ``priority``."""
        lane = self._lanes[priority]
        for batch in list(lane):
            try:
                self._step_batch(priority, batch)
            except Exception as err:
                _fail_batch(batch, err, "decode step")
            if not batch.rows:
                lane.remove(batch)

    def _step_batch(self, priority: int, batch: _Batch) -> None:
        """One decode step of ``batch``: each row feeds its last token (once per member)."""
        if not batch.rows:
            return
        device = self.soup.device
        ids = torch.tensor([[r.last] for r in batch.rows for _ in range(r.members)], device=device)
        positions = torch.tensor([[r.position] for r in batch.rows for _ in range(r.members)], device=device)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(ids), 1)], dim=1)
        with self.soup.mixed(batch.weights):
            out = self.soup.model(
                input_ids=ids,
                attention_mask=batch.mask,
                position_ids=positions,
                past_key_values=batch.cache,
                use_cache=True,
            )
        self.history.append(("step", priority, len(ids)))
        for r in batch.rows:
            r.position += 1
        self._advance(batch, out.logits[:, -1, :])

    def _advance(self, batch: _Batch, logits: torch.Tensor) -> None:
        """Draw each row's next token from ``logits`` (B, V) of its members, stream it, retire
        ended rows."""
        rows = batch.rows
        tokens = next_tokens(
            combine(logits.float(), [r.request.coeffs for r in rows]),
            [r.request.sampling for r in rows],
            torch.tensor([r.key for r in rows], dtype=torch.int64),
            torch.tensor([r.steps for r in rows], dtype=torch.int64),
        ).tolist()
        kept = []
        for b, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            ended = self._take(row, token)
            if ended is None:
                kept.append(b)
            else:
                self._resolve(row, finished=ended)
        if len(kept) < len(rows):
            batch.keep(kept)

    def _take(self, row: _Row, token: int) -> bool | None:
        """Append ``token`` to ``row``: None while it goes on, else whether it finished (EOS or a
        stop string: True) or ran out of tokens (False)."""
        if token in self.stops:
            return True
        row.generated.append(token)
        row.last = token
        request = row.request
        if request.on_text is None and not request.stops:  # decoded once, when the row ends
            return False if row.steps >= request.sampling.max_new_tokens else None
        text = _decode(self.soup.tokenizer, row.generated)
        cut = min((i for s in request.stops if (i := text.find(s)) >= 0), default=-1)
        row.text = text if cut < 0 else text[:cut]
        shown = row.text if cut >= 0 else _hold_back(row.text, request.stops)
        if request.on_text is not None and shown:
            try:
                request.on_text(shown)
            except Exception:  # a broken listener must not stop the others' rows
                log.exception("on_text callback failed")
        if cut >= 0:
            return True
        return False if row.steps >= request.sampling.max_new_tokens else None

    def _drop_cancelled(self) -> None:
        """Resolve the cancelled rows of every lane and free their batch rows."""
        for lane in self._lanes.values():
            for batch in list(lane):
                try:
                    kept = []
                    for b, row in enumerate(batch.rows):
                        if row.request.ticket.cancelled:
                            self._resolve(row, finished=False, cancelled=True)
                        else:
                            kept.append(b)
                    if len(kept) < len(batch.rows):
                        batch.keep(kept)
                except Exception as err:
                    _fail_batch(batch, err, "dropping cancelled rows")
                if not batch.rows:
                    lane.remove(batch)

    def _close_all(self, err: Exception) -> None:
        """The loop ends: running rows resolve as cancelled (with what they generated), waiting
        requests fail with ``err``."""
        for lane in self._lanes.values():
            for batch in lane:
                for row in batch.rows:
                    self._resolve(row, finished=False, cancelled=True)
        self._lanes = {}
        with self._wake:
            waiting, self._waiting = self._waiting, []
        for r in waiting:
            if r.ticket.future.set_running_or_notify_cancel():
                _resolve_error(r.ticket, err)


class Cancelled(Exception):
    """Generation was cancelled before every row ended (``Scheduler.generate``, a grid's chunk)."""


def member_rows(weights: torch.Tensor, method: str) -> tuple[torch.Tensor, tuple[float, ...] | None]:
    """The batch rows that decode one response to the mix ``weights`` (N,): their gates (k, N)
    and, for decoding-time mixing, the weight of each row's log-probs (None: one soup row).

    ``soup``: one row with the mix as its gates. ``mod``: one row per adapter i with w_i != 0,
    gated by adapter i alone, scored together as sum_i w_i log p_i (``combine``); weights are taken
    as given, not normalised (their sum acts as an inverse temperature; a negative weight pushes
    away from that adapter). All weights zero is the base model; one adapter at weight 1 is that
    adapter alone, the very row the soup decodes for that one-hot mix.
    """
    if check_method(method) not in DECODING_METHODS:
        raise SoupError(
            f"{method} is one of PEFT's merges: it runs one merged mix at a time on its own copy of the "
            f"model (explorer grid --method {method}), not in shared batches; use soup or mod here"
        )
    if method == "soup":
        return weights[None].clone(), None
    used = [i for i, w in enumerate(weights.tolist()) if w != 0.0]
    if not used or (len(used) == 1 and float(weights[used[0]]) == 1.0):
        return weights[None].clone(), None  # the base, or one adapter alone: a soup row
    gates = torch.zeros(len(used), weights.shape[0], dtype=torch.float64)
    for row, i in enumerate(used):
        gates[row, i] = 1.0
    return gates, tuple(float(weights[i]) for i in used)


def combine(logits: torch.Tensor, coeffs: Sequence[tuple[float, ...] | None]) -> torch.Tensor:
    """Each response's next-token scores (S, V) from its members' logits (B, V), B = sum of members.

    A soup response (``None``) has one member: its logits as they are. A decoding-time mix (MOD)
    with members i = 1..k and weights w_i scores token v as sum_i w_i log p_i(v), p_i the softmax
    of member i's logits: the distribution proportional to prod_i p_i^{w_i} (temperature and top-p
    then apply to it, and the draw is the same paired one as the soup's).
    """
    if all(c is None for c in coeffs):
        return logits
    out, b = [], 0
    for c in coeffs:
        if c is None:
            out.append(logits[b])
            b += 1
            continue
        w = torch.tensor(c, dtype=logits.dtype, device=logits.device)
        out.append((w[:, None] * torch.log_softmax(logits[b : b + len(c)], dim=-1)).sum(dim=0))
        b += len(c)
    return torch.stack(out)


def _row_key(request: _Request) -> int:
    """The paired-sampling key of ``explorer.sampling.row_keys``: (seed, prompt, sample index)."""
    return int(row_keys([request.prompt], [request.sample_id], request.sampling.seed)[0])


def _hold_back(text: str, stops: Sequence[str]) -> str:
    """``text`` less its longest tail that could begin a stop string (streamed once it cannot)."""
    held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - held]


def _decode(tokenizer, ids: list[int]) -> str:
    """A row's text as ``explorer.sampling.generate`` decodes it (NUL cannot be stored in netCDF)."""
    return tokenizer.decode(ids, skip_special_tokens=True).replace("\x00", "\ufffd")


def _fail_batch(batch: _Batch, err: Exception, what: str) -> None:
    """``what`` failed on ``batch``: its requests fail with ``err``, the other batches go on."""
    log.exception("%s failed", what)
    for row in batch.rows:
        _resolve_error(row.request.ticket, err)
    batch.rows = []


def _resolve_error(ticket: Ticket, err: BaseException) -> None:
    if not ticket.future.done():
        ticket.future.set_exception(err)
