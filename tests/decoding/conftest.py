"""Fixtures of the decoding tests (models live in ``decoding_stubs``)."""

from __future__ import annotations

import pytest
import torch
from decoding_stubs import make_gpt2


@pytest.fixture(scope="session")
def gpt2_factory():
    """Cached factory ``(seed, vocab=64) -> model``."""
    cache = {}

    def get(seed: int, vocab: int = 64):
        if (seed, vocab) not in cache:
            cache[seed, vocab] = make_gpt2(seed, vocab=vocab)
        return cache[seed, vocab]

    return get


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each decoding test on one intra-op thread (the CPU is shared), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
