"""Tiny randomly initialised models and LoRA adapters, written to disk as real HF/PEFT folders.

Everything here is built offline in well under a second: a byte-level BPE tokenizer with a
chat template, a Llama-style and a GPT-2-style (Conv1D) causal LM in float64, and LoRA
adapters with different ranks, alphas, rsLoRA, rank/alpha patterns and target modules whose
factors are drawn large enough that every adapter moves the logits visibly; and a toy objective
(letters per response) that needs no scorer package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from explorer.objectives import Objective

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Give me one tip for sleeping better tonight.",
    "Explain why the sky is blue in two sentences.",
    "Write a short story about a lighthouse keeper and a cat.",
    "Review the new phone: battery, screen, camera, price.",
    "What is the capital of France? Paris is the answer.",
] * 20


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(kind: str, vocab_size: int, *, seed: int = 0):
    """A 2-layer causal LM in float64: ``kind`` is 'llama' (Linear) or 'gpt2' (Conv1D)."""
    torch.manual_seed(seed)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            eos_token_id=2,
            pad_token_id=0,
            bos_token_id=None,
        )
        model = LlamaForCausalLM(config)
    elif kind == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=128,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(kind)
    return model.to(torch.float64).eval()


# name -> LoraConfig keyword arguments, per model kind: different ranks, alphas, targets, patterns.
ADAPTERS = {
    "llama": {
        "helpful": dict(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]),
        "concise": dict(
            r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "k_proj", "o_proj", "down_proj"]
        ),
        "positive": dict(
            r=3,
            lora_alpha=3,
            target_modules=["gate_proj", "up_proj", "v_proj"],
            rank_pattern={"up_proj": 5},
            alpha_pattern={"gate_proj": 10},
        ),
    },
    "gpt2": {
        "helpful": dict(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True),
        "concise": dict(r=4, lora_alpha=2, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True),
        "positive": dict(r=3, lora_alpha=6, use_rslora=True, target_modules=["c_fc"], fan_in_fan_out=True),
    },
}


def write_adapter(base: torch.nn.Module, folder: Path, *, seed: int, std: float = 0.3, **lora_kwargs) -> Path:
    """Write a PEFT LoRA adapter for ``base`` with random (non-zero) A and B factors to ``folder``."""
    import copy

    torch.manual_seed(seed)
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(init_lora_weights=False, **lora_kwargs))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, std)
    peft_model.save_pretrained(folder)
    return folder


def write_tiny_soup(root: Path, kind: str) -> tuple[Path, dict[str, Path]]:
    """A base model folder and three adapter folders under ``root``; returns (base, {name: folder})."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(kind, len(tokenizer))
    base = root / f"{kind}-base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = {}
    for seed, (name, kwargs) in enumerate(ADAPTERS[kind].items(), start=1):
        adapters[name] = write_adapter(model, root / f"{kind}-{name}", seed=seed, **kwargs)
    return base, adapters


def letters(prompts, responses) -> list[float]:
    """Letters in each response: a toy objective to maximize."""
    return [float(sum(c.isalpha() for c in r)) for r in responses]


LETTERS = Objective("letters", letters)


def write_tiny_reward_model(folder: Path, *, seed: int = 0) -> Path:
    """A random one-layer Llama sequence classifier (num_labels=1) and its tokenizer in ``folder``:
    a local reward model for the ``reward:FOLDER`` objective."""
    from transformers import LlamaForSequenceClassification

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


TINY_PROMPTS = ("Why is the sky blue?", "Write a story")


@contextmanager
def tiny_app_engine(root: Path) -> Iterator:
    """The app's engine over the tiny llama soup (float64) in ``root``: objectives concise and
    letters, the two ``TINY_PROMPTS``, a resolution-2 grid in chunks of 4, exports in root/exports."""
    from explorer.app.engine import Engine
    from explorer.objectives import BUILTINS
    from explorer.soup import Soup

    base, adapters = write_tiny_soup(root, "llama")
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    engine = None
    try:
        engine = Engine(
            soup,
            [BUILTINS["concise"], LETTERS],
            prompts=list(TINY_PROMPTS),
            grid_prompts=list(TINY_PROMPTS),
            resolution=2,
            grid_batch_size=4,
            export_dir=root / "exports",
            cache_dir=None,
        )
        yield engine
    finally:
        if engine is not None:
            engine.close()
        soup.close()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: how far ``a`` is from the reference ``b``."""
    return ((a - b).abs().max() / b.abs().max()).item()
