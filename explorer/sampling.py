"""Batched generation through a soup, with paired sampling: prompts and per-row weights in, texts out.

Paired (keyed) sampling: the random draw for (seed, prompt, sample index, step) is the same
whatever the mix and whatever else shares the batch. We use the Gumbel-max trick: after
temperature and top-p, each row adds Gumbel noise G[v] to its log-probabilities and takes the
argmax, which is an exact sample from the warped distribution. G is a pure function of
(seed, prompt text, sample index, step, token id), computed by an integer hash on the device,
so a mix's response for a prompt and seed is the same alone, in a batch, or in a grid, and
on the CPU or a GPU up to the logits' own numerics.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from explorer.decoding import DEFAULT_MAX_NEW_TOKENS as DEFAULT_MAX_NEW_TOKENS  # re-exported
from explorer.decoding import SamplingConfig
from explorer.errors import SoupError
from explorer.soup import Soup, Weights

_MASK32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixing function on int64 tensors holding values in [0, 2^32).

    Multipliers are below 2^31 so that no int64 product overflows: the result is the same
    on every device and every torch version.
    """
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _MASK32
    return x ^ (x >> 16)


def prompt_key(prompt: str) -> int:
    """A stable 32-bit key of a prompt's text (the same in every process and session)."""
    return zlib.crc32(prompt.encode("utf-8"))


def gumbel_noise(
    row_keys: torch.Tensor, step: int | torch.Tensor, vocab: int, *, device=None
) -> torch.Tensor:
    """Gumbel(0, 1) noise (B, V), float32, a pure function of each row's key, the step and the token id.

    ``row_keys`` (B,) int64 already mixes the seed, the prompt and the sample index; ``step`` is
    one step for every row, or (B,) int64 steps, one per row (rows of a continuous batch).
    """
    steps = torch.as_tensor(step, dtype=torch.int64, device=device)
    step_key = _hash32(row_keys.to(device) ^ _hash32(steps + 0x9E3779B9))  # (B,)
    tokens = torch.arange(vocab, device=device, dtype=torch.int64)  # (V,)
    bits = _hash32(step_key[:, None] ^ _hash32(tokens + 0x632BE5AB)[None, :])  # (B, V)
    u = (bits.to(torch.float64) + 0.5) / 2.0**32  # uniform in (0, 1), never 0 or 1
    return (-torch.log(-torch.log(u))).to(torch.float32)


def row_keys(prompts: Sequence[str], sample_ids: Sequence[int], seed: int) -> torch.Tensor:
    """(B,) int64 keys mixing the seed, each row's prompt text and its sample index."""
    seeds = _hash32(torch.full((len(prompts),), seed & _MASK32, dtype=torch.int64))
    keys = _hash32(seeds ^ torch.tensor([prompt_key(p) for p in prompts], dtype=torch.int64))
    return _hash32(keys ^ torch.tensor([int(s) & _MASK32 for s in sample_ids], dtype=torch.int64))


class PairedGumbel(LogitsProcessor):
    """Adds each row's keyed Gumbel noise to its warped scores (B, V); greedy argmax then samples."""

    def __init__(self, keys: torch.Tensor, prompt_length: int):
        self.keys = keys  # (B,) int64
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:  # type: ignore[override]
        step = input_ids.shape[1] - self.prompt_length
        # argmax(logits + G) is a sample of softmax(logits); -inf (cut by top-p) stays -inf
        return scores.float() + gumbel_noise(self.keys, step, scores.shape[-1], device=scores.device)


def logits_processors(
    prompts: Sequence[str], sample_ids: Sequence[int], config: SamplingConfig, prompt_length: int
) -> LogitsProcessorList:
    """Temperature, top-p, then keyed Gumbel noise; empty for greedy decoding."""
    if config.greedy:
        return LogitsProcessorList()
    procs: list[LogitsProcessor] = [TemperatureLogitsWarper(config.temperature)]
    if config.top_p < 1:
        procs.append(TopPLogitsWarper(config.top_p))
    procs.append(PairedGumbel(row_keys(prompts, sample_ids, config.seed), prompt_length))
    return LogitsProcessorList(procs)


def next_tokens(
    logits: torch.Tensor, configs: Sequence[SamplingConfig], keys: torch.Tensor, steps: torch.Tensor
) -> torch.Tensor:
    """The next token of each row of a batch whose rows decode in their own ways: (B,) int64.

    ``logits`` (B, V) float32 are each row's last-position logits, ``configs[b]`` row b's decoding,
    ``keys`` (B,) int64 its ``row_keys`` and ``steps`` (B,) int64 how many tokens it generated
    before this one. Greedy rows take the argmax; sampled rows go through temperature, top-p and
    the keyed Gumbel noise exactly as ``logits_processors`` does for ``generate``, so a row draws
    the same token whatever else shares its batch.
    """
    tokens = logits.argmax(dim=-1)  # (B,)
    groups: dict[tuple[float, float], list[int]] = {}
    for b, config in enumerate(configs):
        if not config.greedy:
            groups.setdefault((config.temperature, config.top_p), []).append(b)
    for (temperature, top_p), rows in groups.items():
        index = torch.tensor(rows, device=logits.device)
        scores = TemperatureLogitsWarper(temperature)(None, logits.index_select(0, index))  # type: ignore[arg-type]
        if top_p < 1:
            scores = TopPLogitsWarper(top_p)(None, scores)  # type: ignore[arg-type]
        noise = gumbel_noise(
            keys[rows], steps[rows].to(logits.device), logits.shape[-1], device=logits.device
        )
        tokens[index] = (scores.float() + noise).argmax(dim=-1)
    return tokens


@dataclass(frozen=True)
class Generations:
    """The result of one batched generation, one entry per row."""

    texts: list[str]
    token_ids: list[list[int]]  # generated tokens only, stopping EOS excluded
    finished: list[bool]  # True where the row stopped at EOS, False where max_new_tokens cut it


def encode_prompts(tokenizer, prompts: Sequence[str], *, chat: bool = True) -> dict[str, torch.Tensor]:
    """Tokenize ``prompts`` left-padded: ``input_ids`` and ``attention_mask``, both (B, T).

    With ``chat`` and a tokenizer that has a chat template, each prompt becomes one user turn
    followed by the generation prompt.
    """
    if isinstance(prompts, str):
        raise SoupError("prompts must be a list of strings, got one string: wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise SoupError("no prompts given: give at least one prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise SoupError(f"prompt {i} is empty ({p!r}): write a request for the model to answer")
    if chat and getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
        special = False  # the template already holds the special tokens
    else:
        texts, special = prompts, True
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def encode_messages(tokenizer, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """The token ids of a chat (``[{"role": "user", "content": "..."}, ...]``) followed by the
    generation prompt, as ``encode_prompts`` encodes a one-turn chat; without a chat template the
    turns' contents are joined by blank lines."""
    if not messages:
        raise SoupError("no messages given: give at least one message with a role and a content")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or not m.get("role"):
            raise SoupError(f"message {i} must have a 'role' and a text 'content', got {m!r}")
    if not any(m["content"].strip() for m in messages):
        raise SoupError("every message is empty: write a request for the model to answer")
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer("\n\n".join(m["content"] for m in messages))["input_ids"])


def prompt_lengths(tokenizer, prompts: Sequence[str]) -> list[int]:
    """Each prompt's length in tokens, as ``generate`` encodes it (chat template included)."""
    return encode_prompts(tokenizer, prompts)["attention_mask"].sum(dim=1).tolist()


def context_length(model) -> int | None:
    """The most tokens (prompt + response) the model was built for, from its config; None if unknown."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_lengths(soup: Soup, lengths: Sequence[int], max_new_tokens: int) -> None:
    """Refuse prompts longer than the model's context minus ``max_new_tokens`` (``lengths``: each
    prompt's tokens), before anything is generated: past its context a model answers garbage."""
    context = context_length(soup.model)
    if context is None or not len(lengths):
        return
    if int(max_new_tokens) >= context:  # no prompt would fit: the number is the mistake, not a prompt
        how = "is more than" if int(max_new_tokens) > context else "is as long as"
        raise SoupError(
            f"--max-new-tokens {max_new_tokens} {how} the model's context of {context} tokens: lower it "
            f"well below {context} (the prompt needs room too)"
        )
    room = context - int(max_new_tokens)
    longest = max(range(len(lengths)), key=lambda i: lengths[i])
    if lengths[longest] > room:
        too_long = sum(1 for n in lengths if n > room)
        raise SoupError(
            f"prompt {longest} is {lengths[longest]} tokens ({too_long} prompt(s) too long): with "
            f"{max_new_tokens} new tokens the model's context of {context} tokens leaves {max(room, 0)} for a "
            "prompt; shorten the prompt or lower --max-new-tokens"
        )


def stop_token_ids(soup: Soup) -> list[int]:
    """Token ids that end a response: the generation config's EOS ids and the tokenizer's."""
    ids = soup.model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if soup.tokenizer.eos_token_id is not None and soup.tokenizer.eos_token_id not in ids:
        ids.append(soup.tokenizer.eos_token_id)
    return ids


def check_rows(
    soup: Soup, prompts: Sequence[str], weights: Weights, sample_ids: Sequence[int] | None
) -> tuple[torch.Tensor, list[int]]:
    """The rows' mixes (1 or len(prompts), N) and sample ids (default 0) of a batched generation,
    checked against the number of prompts."""
    w = soup.weights_tensor(weights)  # (rows, N)
    if w.shape[0] not in (1, len(prompts)):
        raise SoupError(
            f"{w.shape[0]} mixes given for {len(prompts)} prompts: give one mix, or one per prompt"
        )
    ids = [0] * len(prompts) if sample_ids is None else list(sample_ids)
    if len(ids) != len(prompts):
        raise SoupError(f"{len(ids)} sample ids given for {len(prompts)} prompts")
    return w, ids


def generate(
    soup: Soup,
    prompts: Sequence[str],
    weights: Weights,
    *,
    config: SamplingConfig | None = None,
    max_new_tokens: int | None = None,
    sample_ids: Sequence[int] | None = None,
    chat: bool = True,
    streamer=None,
    stopping_criteria=None,
) -> Generations:
    """Batched generation: row b answers ``prompts[b]`` with the soup at mix ``weights[b]``.

    ``weights`` is one mix for every row or one mix per prompt (see ``Soup.weights_tensor``).
    ``config`` sets greedy or paired sampling (``max_new_tokens`` overrides its length);
    ``sample_ids[b]`` (default 0) picks which of a prompt's samples row b is. Rows stop at EOS
    or after ``max_new_tokens`` tokens. ``streamer`` and ``stopping_criteria`` are passed to
    Hugging Face ``generate``. The mix is this thread's (``Soup.mixed``): other threads may run
    the soup meanwhile with their own mixes.
    """
    config = config or SamplingConfig()
    if max_new_tokens is not None:
        config = SamplingConfig(max_new_tokens, config.temperature, config.top_p, config.seed)
    w, sample_ids = check_rows(soup, prompts, weights, sample_ids)
    enc = encode_prompts(soup.tokenizer, prompts, chat=chat)
    check_prompt_lengths(soup, enc["attention_mask"].sum(dim=1).tolist(), int(config.max_new_tokens))
    with soup.mixed(w):
        return generate_with(
            soup.model,
            soup.tokenizer,
            prompts,
            enc,
            config=config,
            sample_ids=sample_ids,
            stops=stop_token_ids(soup),
            streamer=streamer,
            stopping_criteria=stopping_criteria,
        )


def generate_with(
    model,
    tokenizer,
    prompts: Sequence[str],
    enc: Mapping[str, torch.Tensor],
    *,
    config: SamplingConfig,
    sample_ids: Sequence[int],
    stops: list[int],
    streamer=None,
    stopping_criteria=None,
) -> Generations:
    """Hugging Face ``generate`` on ``model`` (the soup's, or any causal LM: a PEFT model with a
    merged adapter) with the paired draws of ``config``: ``enc`` the encoded ``prompts``
    (``encode_prompts``), ``stops`` the token ids that end a response."""
    hf_config = GenerationConfig(
        max_new_tokens=int(config.max_new_tokens),
        do_sample=False,  # sampling, when asked for, is the keyed Gumbel noise + argmax
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
    )
    processors = logits_processors(prompts, sample_ids, config, enc["input_ids"].shape[1])
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model.generate(
            **{k: v.to(device) for k, v in enc.items()},
            generation_config=hf_config,
            logits_processor=processors,
            streamer=streamer,
            stopping_criteria=stopping_criteria,
        )
    new = out[:, enc["input_ids"].shape[1] :].cpu()  # (B, <= max_new_tokens)
    return _trim(tokenizer, new, stops)


def _trim(tokenizer, new: torch.Tensor, stops: list[int]) -> Generations:
    """Cut each row at its first stop token and decode it."""
    token_ids, finished = [], []
    for row in new.tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), None)
        token_ids.append(row if cut is None else row[:cut])
        finished.append(cut is not None)
    # NUL cannot be stored in netCDF strings (it ends them); no real text needs it
    texts = [tokenizer.decode(ids, skip_special_tokens=True).replace("\x00", "\ufffd") for ids in token_ids]
    return Generations(texts=texts, token_ids=token_ids, finished=finished)
