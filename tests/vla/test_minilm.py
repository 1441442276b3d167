"""The real frozen MiniLM behind the instruction cache (slow: loads the 88 MB encoder)."""

from __future__ import annotations

import pytest
import torch

from vla.encoders import InstructionCache


@pytest.mark.slow
def test_minilm_embeddings_are_cached_and_meaningful(tmp_path):
    cache = InstructionCache(tmp_path / "c.safetensors")
    texts = ["put the red block in the blue zone", "place the red cube in the blue area",
             "push the green block to the left"]
    emb = cache.embed(texts)
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-4, rtol=0)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2])  # paraphrase closer than other task
    cache.save()
    offline = InstructionCache(tmp_path / "c.safetensors", allow_encoder=False)
    torch.testing.assert_close(offline.embed(texts), emb)
