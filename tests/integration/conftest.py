"""The real SmolLM2-135M-Instruct demo base, converted once into the cache (about 20 s the first time)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2_base():
    from explorer.demo import demo_base

    return demo_base()
