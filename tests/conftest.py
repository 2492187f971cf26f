"""Shared fixtures: tiny float64 models with three random LoRA adapters, on disk."""

from __future__ import annotations

import os

import pytest

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.tiny import write_tiny_soup  # noqa: E402


@pytest.fixture(scope="session", params=["llama", "gpt2"])
def tiny_files(request, tmp_path_factory):
    """(kind, base folder, {name: adapter folder}) for a Llama-style and a GPT-2-style model."""
    root = tmp_path_factory.mktemp(request.param)
    base, adapters = write_tiny_soup(root, request.param)
    return request.param, base, adapters


@pytest.fixture(scope="session")
def llama_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama-only")
    return write_tiny_soup(root, "llama")


@pytest.fixture
def tiny_soup(tiny_files):
    from explorer.soup import Soup

    kind, base, adapters = tiny_files
    soup = Soup.load(base, adapters, device="cpu")
    yield soup
    soup.close()


@pytest.fixture
def soup64(tiny_files):
    """The tiny soup in float64 (Llama-style and GPT-2-style), for exactness checks."""
    from explorer.soup import Soup

    kind, base, adapters = tiny_files
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    yield soup
    soup.close()


@pytest.fixture(scope="module")
def llama_soup64(tmp_path_factory):
    """A tiny Llama-style soup in float64, shared by a test module."""
    from explorer.soup import Soup

    base, adapters = write_tiny_soup(tmp_path_factory.mktemp("llama64"), "llama")
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    yield soup
    soup.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The app's engine over the tiny soup (``tests.tiny.tiny_app_engine``), one per test module."""
    from tests.tiny import tiny_app_engine

    with tiny_app_engine(tmp_path_factory.mktemp("app")) as engine:
        yield engine


@pytest.fixture
def session(engine):
    """One app session on ``engine`` (6 new tokens); closed after the test, its worker joined."""
    from explorer.app.state import Session

    s = Session(engine, max_new_tokens=6)
    yield s
    s.close(wait=60)
