"""Train one LoRA adapter per objective on the demo base by rejection sampling (best-of-n, then SFT).

    python -m models.train --objective positive --objective concise --objective readable

1. sample ``--samples`` responses per train prompt from the base model (temperature sampling,
   one fixed seed per batch), cached in models/.cache so every objective reuses them;
2. score them with the objective and keep the best response per prompt;
3. fine-tune a LoRA (PEFT) on those (prompt, best response) pairs, loss on the response only;
4. write models/adapters/OBJECTIVE/ (PEFT format, safetensors) and its recipe.yaml.

Runs on the CPU (about 10 min of sampling once, then 2-3 min per objective on 2 cores) or on
a GPU when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = HERE.parent / "assets" / "prompts" / "train.txt"


@dataclass
class Recipe:
    """Everything that determines an adapter; written beside it as recipe.yaml."""

    objective: str
    prompts_file: str = str(PROMPTS.relative_to(HERE.parent))
    prompts_sha256: str = ""
    samples_per_prompt: int = 6  # best-of-n
    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 80
    sample_seed: int = 1234
    sample_batch_size: int = 48
    train_seed: int = 0
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 4e-4
    lora: dict = field(
        default_factory=lambda: {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "target_modules": ["q_proj", "v_proj"],
        }
    )
    steps: int = 0  # filled in after training
    final_loss: float = 0.0
    best_mean_score: float = 0.0  # mean objective score of the chosen responses
    sample_mean_score: float = 0.0  # mean over all samples
    versions: dict = field(default_factory=dict)
    device: str = ""
    wall_time_s: float = 0.0


def read_prompts(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def sample_responses(model, tokenizer, prompts: list[str], recipe: Recipe, device) -> list[dict]:
    """``samples_per_prompt`` sampled responses per prompt: [{prompt, response, finished}]."""
    import torch

    from explorer.sampling import encode_prompts

    rows = [p for p in prompts for _ in range(recipe.samples_per_prompt)]
    eos = tokenizer.eos_token_id
    out = []
    for start in range(0, len(rows), recipe.sample_batch_size):
        batch = rows[start : start + recipe.sample_batch_size]
        enc = encode_prompts(tokenizer, batch)
        torch.manual_seed(recipe.sample_seed + start)
        with torch.inference_mode():
            gen = model.generate(
                **{k: v.to(device) for k, v in enc.items()},
                do_sample=True,
                temperature=recipe.temperature,
                top_p=recipe.top_p,
                top_k=0,
                max_new_tokens=recipe.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos,
            )
        for prompt, ids in zip(batch, gen[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            finished = eos in ids
            ids = ids[: ids.index(eos)] if finished else ids
            out.append(
                {
                    "prompt": prompt,
                    "response": tokenizer.decode(ids, skip_special_tokens=True),
                    "finished": finished,
                }
            )
        print(f"  sampled {min(start + len(batch), len(rows))}/{len(rows)}", flush=True)
    return out


def cached_samples(model, tokenizer, prompts, recipe: Recipe, device) -> list[dict]:
    key = json.dumps(
        [
            recipe.prompts_sha256,
            recipe.samples_per_prompt,
            recipe.temperature,
            recipe.top_p,
            recipe.max_new_tokens,
            recipe.sample_seed,
            recipe.sample_batch_size,
        ]
    )
    path = HERE / ".cache" / f"samples-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines()]
    samples = sample_responses(model, tokenizer, prompts, recipe, device)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(s) + "\n" for s in samples))
    tmp.rename(path)
    return samples


def best_of_n(samples: list[dict], objective) -> tuple[list[dict], float, float]:
    """The best-scoring sample per prompt (objective's direction), and the mean scores."""
    import numpy as np

    scores = objective.score([s["prompt"] for s in samples], [s["response"] for s in samples])
    best: dict[str, tuple[float, dict]] = {}
    for s, v in zip(samples, scores, strict=True):
        if not s["response"].strip() or np.isnan(v):
            continue
        key = objective.sign * v
        if s["prompt"] not in best or key > best[s["prompt"]][0]:
            best[s["prompt"]] = (key, s)
    chosen = [s for _, s in best.values()]
    chosen_mean = float(np.mean([objective.sign * k for k, _ in best.values()]))
    return chosen, chosen_mean, float(np.nanmean(scores))


def sft(model, tokenizer, examples: list[dict], recipe: Recipe, device) -> tuple[object, int, float]:
    """LoRA SFT on (prompt, response) pairs, loss on response tokens only. Returns (peft model, steps, last loss)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(recipe.train_seed)
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **recipe.lora))
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=recipe.learning_rate)
    encoded = [_encode_pair(tokenizer, e) for e in examples]
    rng = random.Random(recipe.train_seed)
    steps, loss_value = 0, float("nan")
    for epoch in range(recipe.epochs):
        rng.shuffle(encoded)
        for start in range(0, len(encoded), recipe.batch_size):
            ids, labels = _pad(
                [e for e in encoded[start : start + recipe.batch_size]], tokenizer.pad_token_id
            )
            loss = peft_model(
                input_ids=ids.to(device),
                attention_mask=(labels != -200).to(device),
                labels=labels.masked_fill(labels == -200, -100).to(device),
            ).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            steps, loss_value = steps + 1, loss.item()
        print(f"  epoch {epoch + 1}/{recipe.epochs}: loss {loss_value:.3f}", flush=True)
    peft_model.eval()
    return peft_model, steps, loss_value


def _encode_pair(tokenizer, example: dict) -> tuple[list[int], list[int]]:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": example["prompt"]}], tokenize=False, add_generation_prompt=True
    )
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(example["response"], add_special_tokens=False)["input_ids"]
    if example["finished"]:
        r_ids = r_ids + [tokenizer.eos_token_id]
    return p_ids + r_ids, [-100] * len(p_ids) + r_ids


def _pad(batch, pad_id):
    """Right-pad to one length; -200 marks padding in labels (turned into the attention mask)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([i + [pad_id] * (width - len(i)) for i, _ in batch])
    labels = torch.tensor([lab + [-200] * (width - len(lab)) for _, lab in batch])
    return ids, labels


def versions() -> dict:
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def main(args: argparse.Namespace) -> None:
    import torch
    import yaml

    from explorer.adapters import file_sha256
    from explorer.demo import demo_base
    from explorer.objectives import get_objective
    from explorer.soup import load_base

    torch.set_num_threads(max(1, torch.get_num_threads()))
    prompts = read_prompts(PROMPTS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for name in args.objective:
        objective = get_objective(name)
        recipe = Recipe(
            objective=name, prompts_sha256=file_sha256(PROMPTS), device=str(device), versions=versions()
        )
        start = time.time()
        model, tokenizer = load_base(demo_base(), device=device, dtype="float32")
        print(
            f"[{name}] sampling {recipe.samples_per_prompt} responses for {len(prompts)} prompts", flush=True
        )
        samples = cached_samples(model, tokenizer, prompts, recipe, device)
        chosen, recipe.best_mean_score, recipe.sample_mean_score = best_of_n(samples, objective)
        print(
            f"[{name}] best-of-{recipe.samples_per_prompt} mean {recipe.best_mean_score:.3f} "
            f"vs all samples {recipe.sample_mean_score:.3f}; training on {len(chosen)} pairs",
            flush=True,
        )
        peft_model, recipe.steps, recipe.final_loss = sft(model, tokenizer, chosen, recipe, device)
        out = HERE / "adapters" / name
        peft_model.save_pretrained(out)
        (out / "README.md").unlink(missing_ok=True)  # PEFT's model-card stub says nothing about this adapter
        recipe.wall_time_s = round(time.time() - start, 1)
        (out / "recipe.yaml").write_text(yaml.safe_dump(asdict(recipe), sort_keys=False))
        print(f"[{name}] wrote {out} in {recipe.wall_time_s:.0f} s", flush=True)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", action="append", required=True, help="a built-in objective; repeatable")
    return p


if __name__ == "__main__":
    main(make_parser().parse_args())
