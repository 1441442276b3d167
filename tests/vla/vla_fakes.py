"""Fakes the VLA tests share (imported by name: ``from vla_fakes import ...``).

They live here, not in ``conftest.py``: every test folder has a ``conftest`` module, and which
one ``import conftest`` finds depends on what pytest collected first.
"""

from __future__ import annotations

import torch

from vla.encoders import InstructionCache

INSTRUCTIONS = ("put the red block in the blue zone", "push the green block left")


def fake_instruction_cache() -> InstructionCache:
    """An encoder-free cache holding fixed random unit embeddings for ``INSTRUCTIONS``."""
    cache = InstructionCache(allow_encoder=False)
    g = torch.Generator().manual_seed(0)
    for text in INSTRUCTIONS:
        v = torch.randn(384, generator=g)
        cache.put(text, v / v.norm())
    return cache
