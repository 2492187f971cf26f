"""Train one LoRA adapter per objective on the demo base with DPO (TRL) on best-vs-worst-of-n pairs.

    python -m models.train --objective positive      # one command per adapter (3 rounds, below)
    python -m models.train --objective concise
    python -m models.train --objective readable

1. Candidates (shared by every objective, cached in models/.cache): for each of the training
   prompts (models/prompts/train.txt, never a held-out prompt), ``n`` responses sampled from
   the *base* model: one for the plain request and two for the request followed by each style
   hint below (a wider proposal distribution than plain sampling; the hint is never part of the
   training prompt, so the adapter learns to behave so when *not* asked: context distillation).
2. Pairs: each candidate is scored by the objective; per prompt, ``chosen`` is the best-scoring
   candidate that passes the reward-hacking guards (relevant to the prompt, at least
   ``min_words`` words, no repeated-phrase loops, at most two "!"; for ``concise`` also a
   finished answer, not one cut by the token limit) and ``rejected`` the worst-scoring
   candidate; a prompt whose pair differs by less than ``min_margin`` is dropped.
3. DPO with a PEFT LoRA (TRL ``DPOTrainer``, sigmoid loss plus an NLL term on ``chosen``, the
   "RPO" mix, which keeps the adapter's text fluent), the base model as the reference.
4. Write explorer's demo adapter folder for the objective (PEFT format, safetensors) and its
   ``recipe.yaml``: method, data hashes, seeds, steps, library versions, wall time.

Iterated DPO: the demo's ``positive`` takes three rounds and ``readable`` two (``DEMO_ROUNDS``
says what each round changes; ``--rounds N`` for another number; the earlier rounds are written
to models/.cache). ``--init ADAPTER`` runs one more round from a trained adapter (its own recipe
says which round it is). A round after the first samples ``policy_samples_per_hint`` new
candidates per prompt from the base *with that adapter* (on-policy), pairs the best guarded
candidate of all rounds against the worst of the adapter's own samples (with ``reject_loops``,
its loopiest sample when it has one), and goes on training the adapter's LoRA (the reference is
the previous round's adapter, TRL's frozen "ref" copy; the adapter written is still one delta on
the base)::

    python -m models.train --objective positive --init explorer/data/adapters/positive

A response cut by the token limit gets no EOS in training (TRL would append one to every
completion; ``_prepare_dataset`` below tokenizes the pairs itself for that reason).
Runs on the CPU (2 cores: about 15 min of sampling once, then about 10 min per objective).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "prompts" / "train.txt"
CACHE = HERE / ".cache"

# Appended to the request when sampling candidates only (never in the training prompt).
HINTS = {
    "plain": "",
    "concise": " Answer in two or three sentences.",
    "positive": " Answer in a warm, cheerful and encouraging tone.",
    "readable": " Use short sentences and simple words that a child could understand.",
}


@dataclass
class Recipe:
    """Everything that determines an adapter; written beside it as recipe.yaml."""

    objective: str
    method: str = "DPO (TRL DPOTrainer, sigmoid + NLL on chosen) on best-vs-worst-of-n pairs, LoRA"
    prompts_file: str = str(PROMPTS.relative_to(HERE.parent))
    prompts_sha256: str = ""
    prompts: int = 0
    # candidates
    hints: dict = field(default_factory=lambda: dict(HINTS))
    samples_per_hint: dict = field(
        default_factory=lambda: {"plain": 1, "concise": 2, "positive": 2, "readable": 2}
    )
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 128
    sample_seed: int = 1234
    sample_batch_size: int = 56
    candidates_sha256: str = ""
    # rounds after the first (iterated DPO): candidates sampled from the previous round's adapter
    round: int = 1
    init_adapter_sha256: str = ""  # the previous round's adapter_model.safetensors
    policy_samples_per_hint: dict = field(default_factory=dict)
    policy_temperature: float | None = None  # None: ``temperature``; 0: greedy (the app's decoding)
    policy_candidates_sha256: str = ""
    previous_rounds: list = field(default_factory=list)  # earlier rounds' recipes, without their own history
    # pairs
    min_words: int = 15
    min_margin: float = 0.0  # filled per objective from MARGINS
    relevance_slack: float = 0.05  # chosen's relevance >= the prompt's median candidate relevance - slack
    # chosen's words >= this x the prompt's median candidate words (not for concise; 0: no guard)
    min_length_ratio: float = 0.0
    # a later round: reject the adapter's own looping sample (distinct-2 < LOOP_DISTINCT2) when it
    # has one, whatever its score (no margin), else its worst-scoring one
    reject_loops: bool = False
    pairs: int = 0
    pairs_sha256: str = ""
    chosen_mean_score: float = 0.0
    rejected_mean_score: float = 0.0
    # DPO
    train_seed: int = 0
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    beta: float = 0.1
    sft_weight: float = 1.0  # weight of the NLL term on chosen (RPO)
    lora: dict = field(
        default_factory=lambda: {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        }
    )
    steps: int = 0
    final_loss: float = 0.0
    final_reward_accuracy: float = 0.0
    versions: dict = field(default_factory=dict)
    device: str = ""
    threads: int = 0
    sampling_wall_time_s: float = 0.0  # once, shared by every objective (also when read from the cache)
    policy_sampling_wall_time_s: float = 0.0  # this round's samples from the previous round's adapter
    wall_time_s: float = 0.0  # pairs + DPO for this objective


# Smallest objective gap between chosen and rejected for a pair to be kept (objective units).
MARGINS = {"positive": 0.3, "concise": 20.0, "readable": 10.0, "relevant": 0.1, "nontoxic": 0.1}


def read_prompts(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def candidate_rows(prompts: list[str], recipe: Recipe) -> list[tuple[str, str, int]]:
    """(prompt, hint name, sample index) for every candidate, grouped by hint (similar lengths batch well)."""
    return [(p, h, k) for h, n in recipe.samples_per_hint.items() for k in range(n) for p in prompts]


def sample_candidates(
    model, tokenizer, prompts: list[str], recipe: Recipe, device, journal: Path
) -> list[dict]:
    """Sampled responses for every (prompt, hint, sample): [{prompt, hint, sample, response, finished}].

    Each batch is appended to ``journal`` as it finishes; a rerun resumes after the last whole
    batch (every batch has its own seed, so a resumed run samples the same candidates).
    """
    import torch

    from explorer.sampling import encode_prompts

    rows = candidate_rows(prompts, recipe)
    eos = tokenizer.eos_token_id
    out = [json.loads(line) for line in journal.read_text().splitlines()] if journal.is_file() else []
    out = out[: len(out) - len(out) % recipe.sample_batch_size]
    journal.write_text("".join(json.dumps(c) + "\n" for c in out))
    sampling = (
        {"do_sample": True, "temperature": recipe.temperature, "top_p": recipe.top_p, "top_k": 0}
        if recipe.temperature > 0
        else {"do_sample": False}  # greedy: the app's default decoding
    )
    for start in range(len(out), len(rows), recipe.sample_batch_size):
        batch = rows[start : start + recipe.sample_batch_size]
        enc = encode_prompts(tokenizer, [p + recipe.hints[h] for p, h, _ in batch])
        torch.manual_seed(recipe.sample_seed + start)
        with torch.inference_mode():
            gen = model.generate(
                **{k: v.to(device) for k, v in enc.items()},
                **sampling,
                max_new_tokens=recipe.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos,
            )
        for (prompt, hint, k), ids in zip(batch, gen[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            finished = eos in ids
            ids = ids[: ids.index(eos)] if finished else [i for i in ids if i != tokenizer.pad_token_id]
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            out.append({"prompt": prompt, "hint": hint, "sample": k, "response": text, "finished": finished})
        with journal.open("a") as f:
            f.write("".join(json.dumps(c) + "\n" for c in out[start:]))
        print(f"  sampled {min(start + len(batch), len(rows))}/{len(rows)}", flush=True)
    return out


def cached_candidates(
    prompts: list[str], recipe: Recipe, device, adapter: Path | None = None
) -> tuple[list[dict], float]:
    """The candidates, sampled once per sampling recipe (and policy: the base, or the base with
    ``adapter``) and cached; returns (candidates, sampling seconds)."""
    parts: list = [
        recipe.prompts_sha256,
        recipe.hints,
        recipe.samples_per_hint,
        recipe.temperature,
        recipe.top_p,
        recipe.max_new_tokens,
        recipe.sample_seed,
        recipe.sample_batch_size,
    ]
    if adapter is not None:
        parts.append(recipe.init_adapter_sha256)  # old keys (base samples) stay valid
    key = json.dumps(parts, sort_keys=True)
    path = CACHE / f"candidates-{sha256_text(key)[:16]}.jsonl"
    seconds = path.with_suffix(".seconds")  # how long the sampling took, kept for the recipes
    if path.is_file():
        took = float(seconds.read_text()) if seconds.is_file() else 0.0
        return [json.loads(line) for line in path.read_text().splitlines()], took
    from explorer.demo import demo_base
    from explorer.soup import load_base

    start = time.time()
    model, tokenizer = load_base(demo_base(), device=device, dtype="float32")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    print(
        f"sampling {len(candidate_rows(prompts, recipe))} candidates for {len(prompts)} prompts"
        + (f" from the base with {adapter}" if adapter is not None else ""),
        flush=True,
    )
    CACHE.mkdir(exist_ok=True)
    journal = path.with_suffix(".partial")
    candidates = sample_candidates(model, tokenizer, prompts, recipe, device, journal)
    journal.rename(path)
    seconds.write_text(f"{time.time() - start:.1f}")
    return candidates, time.time() - start


def word_bigrams(text: str) -> list[tuple[str, str]]:
    """The pairs of consecutive lower-cased words of ``text`` (distinct-2 counts these)."""
    words = text.lower().split()
    return list(zip(words, words[1:], strict=False))


def distinct2(text: str) -> float:
    """Distinct bigrams / bigrams of the response's words (1.0 for fewer than two words)."""
    bigrams = word_bigrams(text)
    return len(set(bigrams)) / len(bigrams) if bigrams else 1.0


def annotate(candidates: list[dict]) -> None:
    """Add every built-in objective's score, distinct-2 and word count to each candidate (in place)."""
    from explorer.objectives import get_objective

    prompts = [c["prompt"] for c in candidates]
    responses = [c["response"] for c in candidates]
    for name in ("positive", "concise", "readable", "relevant"):
        for c, v in zip(candidates, get_objective(name).score(prompts, responses), strict=True):
            c[name] = float(v)
    for c in candidates:
        c["distinct2"] = distinct2(c["response"])
        c["words"] = len(c["response"].split())


def annotated(candidates: list[dict], candidates_sha256: str) -> list[dict]:
    """The candidates with their scores (see ``annotate``), cached beside them."""
    from explorer.objectives import get_objective

    versions = {n: get_objective(n).version for n in ("positive", "concise", "readable", "relevant")}
    path = (
        CACHE
        / f"annotated-{sha256_text(candidates_sha256 + json.dumps(versions, sort_keys=True))[:16]}.jsonl"
    )
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines()]
    annotate(candidates)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(c) + "\n" for c in candidates))
    tmp.rename(path)
    return candidates


# A response whose own distinct-2 is below this repeats phrases: never chosen, and rejected first
# by a round with ``reject_loops``.
LOOP_DISTINCT2 = 0.8


def guarded(
    c: dict, objective: str, median_relevance: float, recipe: Recipe, median_words: float = 0.0
) -> bool:
    """Whether a candidate may be *chosen*: the guards against reward hacking (see the docstring)."""
    import math

    if c["words"] < recipe.min_words or c["distinct2"] < LOOP_DISTINCT2 or c["response"].count("!") > 2:
        return False
    if math.isnan(c[objective]) or c["relevant"] < median_relevance - recipe.relevance_slack:
        return False
    if objective == "concise":
        return bool(c["finished"])
    return c["words"] >= recipe.min_length_ratio * median_words


def worst(scored: list[dict], name: str, sign: float, recipe: Recipe) -> tuple[dict, bool]:
    """The candidate to reject and whether it was taken for looping (see ``Recipe.reject_loops``)."""
    loops = [c for c in scored if c["distinct2"] < LOOP_DISTINCT2] if recipe.reject_loops else []
    if loops:
        return min(loops, key=lambda c: c["distinct2"]), True
    return min(scored, key=lambda c: sign * c[name]), False


def make_pairs(
    candidates: list[dict], objective, recipe: Recipe, rejectable: str | None = None
) -> list[dict]:
    """Per prompt: the best guarded candidate against the worst one, when they differ by the margin.

    ``rejectable``: only candidates whose ``policy`` is this may be rejected (a later round's
    on-policy negatives); every candidate may be chosen."""
    import numpy as np

    by_prompt: dict[str, list[dict]] = {}
    for c in candidates:
        if c["response"]:
            by_prompt.setdefault(c["prompt"], []).append(c)
    pairs = []
    name, sign = objective.name, objective.sign
    for prompt, group in by_prompt.items():
        median_rel = float(np.median([c["relevant"] for c in group]))
        median_words = float(np.median([c["words"] for c in group]))
        ok = [c for c in group if guarded(c, name, median_rel, recipe, median_words)]
        scored = [
            c
            for c in group
            if not np.isnan(c[name]) and (rejectable is None or c.get("policy") == rejectable)
        ]
        if not ok or not scored:
            continue
        chosen = max(ok, key=lambda c: sign * c[name])
        rejected, looping = worst(scored, name, sign, recipe)
        if looping or sign * (chosen[name] - rejected[name]) >= recipe.min_margin:
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def dpo_dataset(pairs: list[dict], tokenizer):
    """A tokenized preference dataset: prompt_ids (chat template), chosen_ids/rejected_ids (+EOS if finished)."""
    from datasets import Dataset

    def ids(text: str, finished: bool) -> list[int]:
        out = tokenizer(text, add_special_tokens=False)["input_ids"]
        return out + [tokenizer.eos_token_id] if finished else out

    rows = []
    for pair in pairs:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": pair["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        rows.append(
            {
                "prompt_ids": tokenizer(prompt, add_special_tokens=False)["input_ids"],
                "chosen_ids": ids(pair["chosen"]["response"], pair["chosen"]["finished"]),
                "rejected_ids": ids(pair["rejected"]["response"], pair["rejected"]["finished"]),
            }
        )
    return Dataset.from_list(rows)


def train_dpo(
    pairs: list[dict], recipe: Recipe, device, out_dir: Path, init: Path | None = None
) -> tuple[object, dict]:
    """DPO with a LoRA on the base (a new one, or ``init``'s, trained further); returns the trained
    PEFT model and TRL's last logged metrics. The reference is the base (a new adapter) or
    ``init`` (TRL keeps a frozen copy of it named "ref")."""
    import torch
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from explorer.demo import demo_base
    from explorer.soup import load_base

    class PretokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer on an already tokenized dataset (TRL would append EOS to cut-off responses)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    torch.manual_seed(recipe.train_seed)
    random.seed(recipe.train_seed)
    model, tokenizer = load_base(demo_base(), device=device, dtype="float32")
    peft_config = None if init is not None else LoraConfig(task_type="CAUSAL_LM", **recipe.lora)
    if init is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init), is_trainable=True)
    config = DPOConfig(
        output_dir=str(out_dir),
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=5,
        beta=recipe.beta,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, recipe.sft_weight],
        precompute_ref_log_probs=True,
        max_length=256,
        seed=recipe.train_seed,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        use_cpu=device.type == "cpu",
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        gradient_checkpointing=False,
    )

    class Progress(TrainerCallback):
        """One line per optimizer step: step, total, seconds so far (the CPU run is long)."""

        def on_step_end(self, args, state, control, **kwargs):
            print(f"  step {state.global_step}/{state.max_steps} ({time.time() - started:.0f} s)", flush=True)

    started = time.time()
    trainer = PretokenizedDPOTrainer(
        model=model,
        args=config,
        train_dataset=dpo_dataset(pairs, tokenizer),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[Progress()],
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return trainer.model, {**(logs[-1] if logs else {}), "steps": trainer.state.global_step}


def versions() -> dict:
    import datasets
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
        "datasets": datasets.__version__,
    }


def adapters_dir() -> Path:
    """Where the demo adapters live (explorer reads them from there)."""
    from explorer import demo

    return Path(demo.DEMO_ADAPTERS)


# The demo's recipe: per objective, the settings of each round that differ from ``Recipe``'s
# defaults (``--rounds`` overrides the number of rounds). Iterated DPO for positive, whose first
# round moved its objective by 0.65 base SDs only; its second round taught it shorter answers
# (55.6 words vs the base's 99.5), so the third one keeps chosen answers at least half the
# prompt's median candidate length. readable's single round looped under greedy decoding
# ("I'm happy. I'm happy. ..." scores a high reading ease; corpus distinct-2 0.72x the base's),
# so its second round samples the adapter greedily and rejects its loops (which cost reading ease:
# 0.95 base SDs); the third samples the loop-free adapter with the hints (a proposal distribution
# above the base's) to raise the chosen answers' ease again, still rejecting loops first.
DEMO_ROUNDS: dict[str, list[dict]] = {
    "positive": [{}, {}, {"min_length_ratio": 0.5, "reject_loops": True}],
    "readable": [
        {},
        {
            "policy_samples_per_hint": {"plain": 1, "readable": 1},
            "policy_temperature": 0.0,
            "reject_loops": True,
        },
        {"reject_loops": True, "epochs": 1},
    ],
}


def main(args: argparse.Namespace) -> None:
    import torch

    torch.manual_seed(0)
    prompts = read_prompts(PROMPTS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for name in args.objective:
        rounds = args.rounds or (1 if args.init else len(DEMO_ROUNDS.get(name, [{}])))
        init = Path(args.init) if args.init else None
        out = Path(args.out) / name if args.out else adapters_dir() / name
        for k in range(rounds):  # earlier rounds go to the cache, the last one to ``out``
            target = out if k == rounds - 1 else CACHE / f"rounds-{name}" / f"round-{k + 1}"
            train_round(name, init, target, prompts, device, epochs=args.epochs)
            init = target


def train_round(
    name: str, init: Path | None, out: Path, prompts: list[str], device, *, epochs: int | None = None
) -> None:
    """One round for objective ``name``: the first from the base (``init`` None), or one more from
    the adapter in ``init``; writes the adapter, recipe.yaml and pairs.jsonl to ``out``."""
    import numpy as np
    import torch
    import yaml

    from explorer.objectives import get_objective

    objective = get_objective(name)
    recipe = Recipe(
        objective=name,
        prompts_sha256=sha256_text(PROMPTS.read_text()),
        prompts=len(prompts),
        min_margin=MARGINS.get(name, 0.0),
        device=str(device),
        threads=torch.get_num_threads(),
        versions=versions(),
    )
    init = start_round(recipe, init) if init is not None else None
    settings = DEMO_ROUNDS.get(name, [])
    for key, value in (settings[recipe.round - 1] if recipe.round <= len(settings) else {}).items():
        setattr(recipe, key, value)
    if epochs:
        recipe.epochs = epochs
    candidates, recipe.sampling_wall_time_s = cached_candidates(prompts, recipe, device)
    recipe.sampling_wall_time_s = round(recipe.sampling_wall_time_s, 1)
    recipe.candidates_sha256 = sha256_text(json.dumps(candidates, sort_keys=True))
    start = time.time()
    candidates = [{**c, "policy": "base"} for c in annotated(candidates, recipe.candidates_sha256)]
    rejectable = None
    if init is not None:
        rejectable = f"round {recipe.round - 1}"
        policy_recipe = replace(
            recipe,
            samples_per_hint=recipe.policy_samples_per_hint,
            sample_seed=recipe.sample_seed + recipe.round,
            temperature=recipe.temperature
            if recipe.policy_temperature is None
            else recipe.policy_temperature,
        )
        own, took = cached_candidates(prompts, policy_recipe, device, adapter=init)
        recipe.policy_sampling_wall_time_s = round(took, 1)
        recipe.policy_candidates_sha256 = sha256_text(json.dumps(own, sort_keys=True))
        candidates += [{**c, "policy": rejectable} for c in annotated(own, recipe.policy_candidates_sha256)]
        start = time.time()
    pairs = make_pairs(candidates, objective, recipe, rejectable=rejectable)
    recipe.pairs = len(pairs)
    recipe.pairs_sha256 = sha256_text(
        json.dumps([[p["prompt"], p["chosen"]["response"], p["rejected"]["response"]] for p in pairs])
    )
    recipe.chosen_mean_score = round(float(np.mean([p["chosen"][name] for p in pairs])), 4)
    recipe.rejected_mean_score = round(float(np.mean([p["rejected"][name] for p in pairs])), 4)
    print(
        f"[{name}] {len(pairs)} pairs from {len(prompts)} prompts: chosen mean {recipe.chosen_mean_score}, "
        f"rejected mean {recipe.rejected_mean_score}",
        flush=True,
    )
    work = CACHE / f"dpo-{name}"
    model, metrics = train_dpo(pairs, recipe, device, work, init=init)
    recipe.steps = int(metrics.get("steps", 0))
    recipe.final_loss = round(float(metrics.get("loss", float("nan"))), 4)
    recipe.final_reward_accuracy = round(float(metrics.get("rewards/accuracies", float("nan"))), 4)
    recipe.wall_time_s = round(time.time() - start, 1)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, selected_adapters=["default"])  # not TRL's "ref" copy
    (out / "README.md").unlink(missing_ok=True)  # PEFT's model-card stub says nothing about this adapter
    (out / "recipe.yaml").write_text(yaml.safe_dump(asdict(recipe), sort_keys=False))
    (out / "pairs.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p["prompt"],
                    "chosen": p["chosen"]["response"],
                    "rejected": p["rejected"]["response"],
                }
            )
            + "\n"
            for p in pairs
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"[{name}] wrote {out} in {recipe.wall_time_s:.0f} s ({recipe.steps} steps)", flush=True)


def start_round(recipe: Recipe, adapter: Path) -> Path:
    """Set ``recipe`` up as the round after ``adapter``'s (an adapter this script wrote for the
    same objective); returns a snapshot of ``adapter`` in the cache (the output may replace it)."""
    import yaml

    previous = yaml.safe_load((adapter / "recipe.yaml").read_text())
    if previous.get("objective") != recipe.objective:
        raise SystemExit(
            f"--init {adapter} was trained for {previous.get('objective')!r}, not {recipe.objective!r}: "
            "give the previous round's adapter for the same objective"
        )
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    recipe.init_adapter_sha256 = hashlib.sha256(weights).hexdigest()
    recipe.round = int(previous.get("round", 1)) + 1
    recipe.previous_rounds = [
        *previous.get("previous_rounds", []),
        {k: v for k, v in previous.items() if k != "previous_rounds"},
    ]
    hint = recipe.objective if recipe.objective in recipe.hints else "plain"
    recipe.policy_samples_per_hint = {"plain": 2, hint: 2} if hint != "plain" else {"plain": 4}
    recipe.lora = previous.get("lora", recipe.lora)
    snapshot = CACHE / f"init-{recipe.objective}-{recipe.init_adapter_sha256[:16]}"
    if not snapshot.is_dir():
        CACHE.mkdir(exist_ok=True)
        shutil.copytree(adapter, snapshot)
    return snapshot


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", action="append", required=True, help="a built-in objective; repeatable")
    p.add_argument(
        "--out", default=None, help="write OUT/OBJECTIVE instead of explorer's demo adapter folder"
    )
    p.add_argument("--epochs", type=int, default=None, help=f"DPO epochs (default {Recipe.epochs})")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="DPO rounds in this command (default: the demo's recipe, 3 for positive, 2 for readable, 1 for "
        "concise; 1 with --init)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="iterated DPO: one more round from this adapter (sample from it, train it further)",
    )
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
