"""An OpenAI-compatible endpoint on the soup's scheduler: ``/v1/completions``, ``/v1/chat/completions``
and ``/v1/models``, streamed (server-sent events) or not, the mix in the request.

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(
        model="soup", messages=[{"role": "user", "content": "Give me one tip for sleeping better."}],
        temperature=0, extra_body={"mix": {"concise": 0.3, "positive": 0.7}},
    )

The mix is the body's ``mix`` (adapter -> weight; adapters left out get 0) and ``method`` how it
combines them (``soup``, the default: the weights mixed; ``mod``: decoding-time mixing of the
adapters' log-probabilities), else the mix written in
the model name (``soup:concise=0.3,positive=0.7``, for harnesses that can only set the model),
else the base model (every weight 0). Each answer says which mix produced it (``mix``).
Requests from the API share batches with the app's sessions (``explorer serve``) or with each
other (``explorer api``). Decoding: ``temperature`` 0 is greedy, otherwise paired sampling keyed by
``seed`` (default 0: the same request gives the same answer); ``top_p``, ``max_tokens``, ``stop``
and ``n`` as OpenAI's. Not supported (answered 400): ``logprobs``, ``echo``, ``logit_bias``,
penalties, token-id prompts and ``suffix``.

The handlers are Tornado's (no Panel): ``explorer serve`` mounts them next to the app, behind the
same Host check; ``explorer api`` serves them alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tornado.web import Application, RequestHandler

from explorer.errors import SoupError
from explorer.hosts import refuse_other_hosts
from explorer.methods import DECODING_METHODS
from explorer.mix import check_mix, parse_weights
from explorer.sampling import DEFAULT_MAX_NEW_TOKENS, SamplingConfig
from explorer.scheduler import Completion, Priority, Scheduler, Ticket

MODEL_ID = "soup"
UNSUPPORTED = ("logprobs", "top_logprobs", "echo", "logit_bias", "suffix", "best_of", "tools", "functions")
MAX_N = 16
MAX_ROWS = 64  # responses one request may ask for (prompts x n): the rest of the users share the lane


@dataclass(frozen=True)
class ApiRequest:
    """A checked request body: what to generate and how."""

    mix: dict[str, float]
    method: str  # soup or mod (explorer.scheduler.METHODS)
    sampling: SamplingConfig
    n: int
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    model: str


def _number(body: Mapping, key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise SoupError(f"'{key}' must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def parse_request(body: Any, names: Sequence[str], *, default_tokens: int) -> ApiRequest:
    """Check an OpenAI request body against the soup's adapters ``names``; SoupError says what is wrong."""
    if not isinstance(body, Mapping):
        raise SoupError("the request body must be a JSON object")
    for key in UNSUPPORTED:
        if body.get(key) not in (None, False, 0, {}, []):
            raise SoupError(f"'{key}' is not supported by this server; leave it out")
    for key in ("presence_penalty", "frequency_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise SoupError(f"'{key}' is not supported by this server; leave it out or set it to 0")
    model = body.get("model") or MODEL_ID
    if not isinstance(model, str):
        raise SoupError(f"'model' must be a string, got {model!r}")
    mix = mix_of(model, body.get("mix"), names)
    method = body.get("method") or "soup"
    if method not in DECODING_METHODS:
        raise SoupError(f"'method' must be one of {list(DECODING_METHODS)}, got {method!r}")
    tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    tokens = default_tokens if tokens is None else tokens
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise SoupError(f"'max_tokens' must be a positive integer, got {tokens!r}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SoupError(f"'seed' must be an integer, got {seed!r}")
    sampling = SamplingConfig(
        max_new_tokens=tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-6, 1.0),
        seed=int(seed or 0),
    )
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise SoupError(f"'n' must be a whole number from 1 to {MAX_N}, got {n!r}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise SoupError(f"'stream' must be true or false, got {stream!r}")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if (
        not isinstance(stop, (list, tuple))
        or len(stop) > 4
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise SoupError(f"'stop' must be a string or a list of up to 4 non-empty strings, got {stop!r}")
    options = body.get("stream_options") or {}
    return ApiRequest(
        mix=mix,
        method=method,
        sampling=sampling,
        n=n,
        stop=tuple(stop),
        stream=stream,
        include_usage=bool(isinstance(options, Mapping) and options.get("include_usage")),
        model=model,
    )


def mix_of(model: str, mix: Any, names: Sequence[str]) -> dict[str, float]:
    """The request's mix: ``mix`` when given, else the one in ``soup:NAME=W,...``, else all zeros."""
    if mix is not None:
        if not isinstance(mix, Mapping):
            raise SoupError(
                f"'mix' must map adapter names to weights, e.g. {{\"{names[0]}\": 0.5}}, got {mix!r}"
            )
        return check_mix(mix, names, missing=0.0)
    head, sep, tail = model.partition(":")
    if sep and head == MODEL_ID:
        return parse_weights(tail, names, flag="model")
    if model != MODEL_ID:
        raise SoupError(f"model '{model}' is not served here: use '{MODEL_ID}' or '{MODEL_ID}:NAME=W,...'")
    return dict.fromkeys(names, 0.0)


def completion_prompts(body: Mapping) -> list[str]:
    """``prompt`` of a /v1/completions body: one string or a list of strings."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise SoupError("'prompt' must be a string or a list of strings (token ids are not supported)")
    return prompts


def chat_messages(body: Mapping) -> list[dict[str, str]]:
    """``messages`` of a /v1/chat/completions body, contents flattened to text."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SoupError('\'messages\' must be a non-empty list of {"role": ..., "content": ...}')
    out = []
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        if not isinstance(content, str) or not isinstance(m.get("role"), str):
            raise SoupError(f"message {i} must have a text 'content' and a 'role', got {m!r}")
        out.append({"role": m["role"], "content": content})
    return out


class _Base(RequestHandler):
    """JSON in, JSON or server-sent events out; errors in OpenAI's shape."""

    scheduler: Scheduler

    def initialize(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.tickets: list[Ticket] = []

    def on_connection_close(self) -> None:  # the client went away: free its rows
        for t in self.tickets:
            t.cancel()

    def fail(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}))

    def write_error(self, status_code: int, **kwargs) -> None:
        self.fail(status_code, self._reason, "server_error")

    def body(self) -> Any:
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":  # a web page's form or text/plain post (no preflight) is refused
            raise SoupError(
                f"send the request as JSON (Content-Type: application/json), got {kind or 'none'!r}"
            )
        try:
            return json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise SoupError("the request body is not valid JSON") from None


class ModelsHandler(_Base):
    def get(self) -> None:
        names = self.scheduler.soup.names
        self.finish(
            {
                "object": "list",
                "data": [
                    {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "pareto-soup-explorer"}
                ],
                "adapters": list(names),
            }
        )


class _Generate(_Base):
    """POST a completion request: validate, submit one row per (prompt, n), answer."""

    chat = False

    async def post(self) -> None:
        try:
            body = self.body()
            request = parse_request(
                body, self.scheduler.soup.names, default_tokens=DEFAULT_MAX_NEW_TOKENS if self.chat else 16
            )
            inputs = self.inputs(body)
            if len(inputs) * request.n > MAX_ROWS:
                raise SoupError(
                    f"{len(inputs)} prompts x n={request.n} asks for more than {MAX_ROWS} responses: "
                    "send fewer prompts per request"
                )
        except SoupError as err:
            self.fail(400, str(err))
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        try:
            for i, kwargs in enumerate(inputs):
                for sample in range(request.n):
                    index = i * request.n + sample

                    def on_text(text: str, index: int = index) -> None:
                        loop.call_soon_threadsafe(events.put_nowait, (index, text))

                    self.tickets.append(
                        self.scheduler.submit(
                            **kwargs,
                            weights=request.mix,
                            sampling=request.sampling,
                            sample_id=sample,
                            stop=request.stop,
                            on_text=on_text if request.stream else None,
                            method=request.method,
                            priority=Priority.INTERACTIVE,
                        )
                    )
        except SoupError as err:
            self.on_connection_close()
            self.fail(400, str(err))
            return
        ident = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        if request.stream:
            await self.stream(ident, request, events)
        else:
            outs = [await asyncio.wrap_future(t.future) for t in self.tickets]
            self.finish(self.answer(ident, request, outs))

    def inputs(self, body: Mapping) -> list[dict]:
        """Keyword arguments of ``Scheduler.submit`` for each input of the body."""
        if self.chat:
            return [{"messages": chat_messages(body)}]
        return [{"prompt": p, "chat": False} for p in completion_prompts(body)]

    def header(self, ident: str, request: ApiRequest) -> dict:
        kind = "chat.completion" if self.chat else "text_completion"
        return {"id": ident, "object": kind, "created": int(time.time()), "model": request.model}

    def choice(self, index: int, out: Completion) -> dict:
        if self.chat:
            message = {"role": "assistant", "content": out.text}
            return {"index": index, "message": message, "finish_reason": out.finish_reason}
        return {"index": index, "text": out.text, "logprobs": None, "finish_reason": out.finish_reason}

    def answer(self, ident: str, request: ApiRequest, outs: Sequence[Completion]) -> dict:
        return {
            **self.header(ident, request),
            "choices": [self.choice(i, o) for i, o in enumerate(outs)],
            "usage": usage(outs, request.n),
            "mix": request.mix,
            "method": request.method,
        }

    def delta(
        self, ident: str, request: ApiRequest, index: int, text: str | None, finish: str | None
    ) -> dict:
        head = self.header(ident, request)
        if self.chat:
            head["object"] = "chat.completion.chunk"
            delta = {} if text is None else {"role": "assistant", "content": text}
            choice = {"index": index, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice]}

    async def stream(self, ident: str, request: ApiRequest, events: asyncio.Queue) -> None:
        """Server-sent events: a chunk per new piece of text, a last chunk per choice with its
        finish reason, usage when asked, then ``[DONE]``."""
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        sent = [""] * len(self.tickets)
        pending = {i: asyncio.wrap_future(t.future) for i, t in enumerate(self.tickets)}
        getter = asyncio.ensure_future(events.get())
        while pending:
            await asyncio.wait([getter, *pending.values()], return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                index, text = getter.result()
                getter = asyncio.ensure_future(events.get())
                await self.send_text(ident, request, index, text, sent)
            for index, future in list(pending.items()):
                if future.done():
                    del pending[index]
                    out = future.result()
                    await self.send_text(ident, request, index, out.text, sent, final=True)
                    await self.send(self.delta(ident, request, index, None, out.finish_reason))
        getter.cancel()
        if request.include_usage:
            outs = [t.future.result() for t in self.tickets]
            await self.send({**self.header(ident, request), "choices": [], "usage": usage(outs, request.n)})
        self.write("data: [DONE]\n\n")
        self.finish()

    async def send_text(
        self, ident: str, request: ApiRequest, index: int, text: str, sent: list[str], *, final: bool = False
    ) -> None:
        """Send what ``text`` adds to what was sent (a half-decoded character waits for the next token)."""
        if not text.startswith(sent[index]):
            return
        new = text[len(sent[index]) :]
        if not final:
            new = new.rstrip("\ufffd")
        if new:
            sent[index] += new
            await self.send(self.delta(ident, request, index, new, None))

    async def send(self, payload: dict) -> None:
        self.write(f"data: {json.dumps(payload)}\n\n")
        await self.flush()


class CompletionsHandler(_Generate):
    chat = False


class ChatCompletionsHandler(_Generate):
    chat = True


def usage(outs: Sequence[Completion], n: int) -> dict[str, int]:
    """OpenAI's token counts: each prompt once (``n`` samples per prompt), every completion."""
    prompt = sum(o.prompt_tokens for o in outs[::n])
    completion = sum(len(o.token_ids) for o in outs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def api_routes(scheduler: Scheduler) -> list[tuple[str, type, dict]]:
    """The API's Tornado routes on ``scheduler`` (for ``pn.serve(extra_patterns=...)`` too)."""
    kwargs = {"scheduler": scheduler}
    return [
        (r"/v1/models", ModelsHandler, kwargs),
        (r"/v1/completions", CompletionsHandler, kwargs),
        (r"/v1/chat/completions", ChatCompletionsHandler, kwargs),
    ]


def make_api_app(scheduler: Scheduler, hosts: Iterable[str]) -> Application:
    """A Tornado application serving only the API, refusing every Host not in ``hosts``."""
    app = Application(api_routes(scheduler))
    refuse_other_hosts(app, hosts)
    return app
