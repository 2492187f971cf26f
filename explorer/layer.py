"""One adapted module's stacked LoRA factors, and everything computed from them.

For a target module with adapters i = 1..N (rank r_i, scale s_i) adapting it, the factors are
stacked once along the rank dimension, R = sum_i r_i:

    A_cat = [s_1 A_1; ...; s_N A_N]   (R, in)
    B_cat = [B_1 ... B_N]             (out, R)

and a mix w (N,) acts through a gate g (R,) that repeats w_i over adapter i's r_i slots:

    delta(w) = B_cat diag(g) A_cat  =  sum_i w_i s_i B_i A_i

``StackedLora`` owns these factors: the gated forward (the soup), the exact mixed factors
(the exported adapter) and the delta (merging, references) all come from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from explorer.adapters import LoraAdapter, LoraModule


class StackedLora:
    """The stacked factors of one target module over a soup's adapters.

    ``parts`` holds, for each adapter that adapts the module, its index in the soup's adapter
    order and its factors; adapters that leave the module alone contribute no rank slot.
    """

    def __init__(
        self,
        name: str,
        parts: Sequence[tuple[int, LoraModule]],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        if not parts:
            raise ValueError(f"module '{name}': no adapter adapts it")
        self.name = name
        self.parts = tuple(parts)
        self.slots: tuple[int, ...] = tuple(i for i, f in self.parts for _ in range(f.rank))  # (R,)
        A, B = self._stack(torch.ones(max(i for i, _ in self.parts) + 1, dtype=torch.float64))
        self.A = A.to(device, dtype)  # (R, in), adapter i's rows pre-scaled by s_i
        self.B = B.to(device, dtype)  # (out, R)

    @classmethod
    def build(
        cls, name: str, adapters: Sequence[LoraAdapter], *, device: torch.device, dtype: torch.dtype
    ) -> StackedLora:
        """The stack of module ``name`` over ``adapters`` (their order is the weights' order)."""
        parts = [(i, a.modules[name]) for i, a in enumerate(adapters) if name in a.modules]
        return cls(name, parts, device=device, dtype=dtype)

    @property
    def rank(self) -> int:
        """R, the stacked rank."""
        return len(self.slots)

    def _stack(self, weights: torch.Tensor, *, drop_zero: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 (A, B) of sum_i weights[i] s_i B_i A_i: ``(R', in)`` and ``(out, R')``."""
        kept = [(i, f) for i, f in self.parts if not (drop_zero and float(weights[i]) == 0.0)]
        if not kept:
            return torch.zeros(0, self.parts[0][1].A.shape[1], dtype=torch.float64), torch.zeros(
                self.parts[0][1].B.shape[0], 0, dtype=torch.float64
            )
        A = torch.cat([float(weights[i]) * f.scale * f.A.to(torch.float64) for i, f in kept])
        B = torch.cat([f.B.to(torch.float64) for _, f in kept], dim=1)
        return A, B

    # ------------------------------------------------------------------------------------------
    # the soup: every batch row with its own mix

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The low-rank path B_cat (g_b * (A_cat x_b)) for each row b: x (B, T, in) -> (B, T, out).

        ``gate`` is (rows, R) with rows 1 (one mix for the batch) or B (one mix per row).
        """
        h = torch.nn.functional.linear(x.to(self.A.dtype), self.A)  # (B, T, R)
        h = h * gate.view(gate.shape[0], *([1] * (h.dim() - 2)), -1)
        return torch.nn.functional.linear(h, self.B)  # (B, T, out)

    # ------------------------------------------------------------------------------------------
    # one mix, exactly, in float64

    def mixed(self, weights: torch.Tensor) -> LoraModule | None:
        """Exact factors of delta(w) in float64 with scale 1, from ``weights`` (N,) in the soup's
        adapter order; adapters with weight 0 are dropped from the rank. None when every adapter
        of this module has weight 0."""
        A, B = self._stack(weights, drop_zero=True)
        return LoraModule(A=A, B=B, scale=1.0) if A.shape[0] else None

    def delta(self, weights: torch.Tensor) -> torch.Tensor:
        """The mixed weight delta sum_i w_i s_i B_i A_i, (out, in) float64 on the CPU."""
        A, B = self._stack(weights)
        return B @ A
