"""PEFT's merges of the soup's adapters, one merged mix at a time: TIES, DARE and PEFT's ``linear``.

These are the calls a PEFT user makes to combine LoRA adapters (``add_weighted_adapter``), run with
PEFT's own code on a private copy of the base model, so they never touch the soup that serves
everyone else:

    ties         combination_type="ties",      density=0.2
    dare         combination_type="dare_ties", density=0.2
    peft-linear  combination_type="linear"

density 0.2 (keep the largest 20% of each adapter's entries; DARE keeps a random 20% and rescales
them by 1/0.2) is the TIES paper's default k and the value of PEFT's own merging examples. These
non-SVD types combine each adapter's A factors and B factors separately (PEFT's implementation for
LoRA; ``linear`` is then *not* the weight soup: B'A' has cross terms B_i A_j), and keep the merged
adapter at rank r, a drop-in adapter; the ``*_svd`` types, which merge the full deltas and factor
them again, are not offered. They are not linear in the weights: each mix is merged on its own.
DARE's random drop is seeded by the mix, so a grid that resumes gets the same merged adapters.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
import zlib
from collections.abc import Iterator, Sequence

import torch
from peft import PeftModel

from explorer.errors import SoupError
from explorer.methods import MERGES
from explorer.sampling import Generations, SamplingConfig, encode_prompts, generate_with, stop_token_ids
from explorer.soup import Soup, load_base


def merge_seed(method: str, weights: Sequence[float]) -> int:
    """The torch seed set before PEFT merges the mix ``weights`` by ``method`` (DARE drops at random)."""
    return zlib.crc32(repr((method, [round(float(w), 10) for w in weights])).encode())


class PeftMerges:
    """A private PEFT model of the soup's base and adapters, to generate with PEFT's merged mixes.

    Holds a second copy of the base model (built on first use): for large models, run merge grids
    where there is memory for two.
    """

    def __init__(self, soup: Soup):
        if soup.base_path is None:
            raise SoupError("PEFT's merges need the soup's files: load it with Soup.load(base, adapters)")
        # no reference to the soup itself: ``merges_for`` keys a weak dictionary by it
        self.tokenizer, self.stops, self.device = soup.tokenizer, stop_token_ids(soup), soup.device
        model, _ = load_base(soup.base_path, device=soup.device, dtype=soup.dtype)
        names = list(soup.names)
        first = soup.adapters[names[0]]
        try:
            peft = PeftModel.from_pretrained(model, first.path, adapter_name=names[0])
            for name in names[1:]:
                peft.load_adapter(soup.adapters[name].path, adapter_name=name)
        except (ValueError, OSError, KeyError) as err:
            raise SoupError(f"PEFT cannot load the adapters for merging: {err}") from err
        self.peft = peft.to(soup.dtype).eval()
        self.names = names
        self._lock = threading.Lock()  # one merged mix at a time on the private model

    @contextlib.contextmanager
    def merged(self, weights: Sequence[float], method: str) -> Iterator[PeftModel]:
        """Within the block the private PEFT model computes PEFT's ``method`` merge of the mix
        ``weights`` (N,, the soup's adapter order)."""
        if method not in MERGES:
            raise SoupError(f"{method!r} is not one of PEFT's merges offered here: {', '.join(MERGES)}")
        combination, density = MERGES[method]
        values = [float(w) for w in weights]
        with self._lock:
            yield from self._merged(values, method, combination, density)

    def _merged(
        self, values: list[float], method: str, combination: str, density: float | None
    ) -> Iterator[PeftModel]:
        self._drop_merged()  # add_weighted_adapter silently keeps an adapter of the same name
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            try:
                with torch.random.fork_rng(devices=devices):  # the process's RNG is left as it was
                    torch.manual_seed(merge_seed(method, values))  # DARE's random drop: the same per mix
                    self.peft.add_weighted_adapter(
                        self.names, values, "merged", combination_type=combination, density=density
                    )
            except ValueError as err:
                raise SoupError(f"PEFT refused the {method} merge of {values}: {err}") from err
            self.peft.set_adapter("merged")
            yield self.peft
        finally:
            self._drop_merged()

    def _drop_merged(self) -> None:
        if "merged" in self.peft.peft_config:
            self.peft.delete_adapter("merged")

    def generate(
        self,
        prompts: Sequence[str],
        weights: Sequence[float],
        method: str,
        *,
        config: SamplingConfig,
        sample_ids: Sequence[int],
        stopping_criteria=None,
    ) -> Generations:
        """Rows of one merged mix, with the same paired draws as the soup's rows (``stopping_criteria``
        as Hugging Face ``generate`` takes them: a grid's cancel)."""
        tokenizer = self.tokenizer
        enc = encode_prompts(tokenizer, prompts)
        with self.merged(weights, method) as model:
            return generate_with(
                model,
                tokenizer,
                prompts,
                enc,
                config=config,
                sample_ids=sample_ids,
                stops=self.stops,
                stopping_criteria=stopping_criteria,
            )


_MERGERS: weakref.WeakKeyDictionary[Soup, PeftMerges] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def merges_for(soup: Soup) -> PeftMerges:
    """The soup's PEFT model for merges, built once (it holds a second copy of the base model)."""
    with _LOCK:
        if soup not in _MERGERS:
            _MERGERS[soup] = PeftMerges(soup)
        return _MERGERS[soup]
