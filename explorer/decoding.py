"""How to decode: the settings of a response (greedy or paired sampling), with no torch import, so
that what only reads results (``explorer pick``) loads no model library."""

from __future__ import annotations

import math
from dataclasses import dataclass

from explorer.errors import SoupError

# The one default response length: the app, Explorer(), its grid and cached front, and the CLI.
# The demo adapters are trained for answers of this length.
DEFAULT_MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class SamplingConfig:
    """How to decode. ``temperature == 0`` is greedy; otherwise paired Gumbel-max sampling."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # tokens generated at most per response
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0  # nucleus mass kept before sampling, in (0, 1]
    seed: int = 0  # with the prompt and sample index, fixes the random draws

    def __post_init__(self) -> None:
        if int(self.max_new_tokens) < 1:
            raise SoupError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and math.isfinite(self.top_p)):
            raise SoupError(
                f"temperature and top_p must be finite numbers, got {self.temperature} and {self.top_p}"
            )
        if not (self.temperature >= 0):
            raise SoupError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise SoupError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
