"""Decoders ask the model for the logits they use only (``logits_to_keep``), same tokens."""

from __future__ import annotations

import inspect

import pytest
import torch
from decoding_stubs import RuleLM

from decoding import EarlyExit, adapter, autoregressive, jacobi


class Plain:
    """Delegates to a model but does not advertise ``logits_to_keep`` (so it is not passed)."""

    def __init__(self, model) -> None:
        self.model, self.config = model, model.config

    def __call__(self, **kwargs):
        assert adapter.LOGITS_TO_KEEP_KWARG not in kwargs
        return self.model(**kwargs)


def test_installed_transformers_takes_the_kwarg_name():
    from transformers import GPT2LMHeadModel

    assert adapter.LOGITS_TO_KEEP_KWARG == "logits_to_keep"
    assert "logits_to_keep" in inspect.signature(GPT2LMHeadModel.forward).parameters


def test_forward_keeps_the_last_positions(gpt2_factory):
    model = gpt2_factory(0)
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    full, _ = adapter.forward(model, ids, None)
    for keep in (1, 3, 7, 9):
        kept, cache = adapter.forward(model, ids, None, logits_to_keep=keep)
        plain, _ = adapter.forward(Plain(model), ids, None, logits_to_keep=keep)
        assert kept.shape == plain.shape == (2, min(keep, 7), 64)
        assert torch.allclose(kept, full[:, -keep:], rtol=0, atol=1e-12)
        assert torch.equal(plain, full[:, -keep:])
        assert cache.get_seq_length() == 7


@pytest.mark.parametrize("seed", range(3))
def test_hf_model_receives_logits_to_keep_and_tokens_match(gpt2_factory, seed):
    model = gpt2_factory(seed)
    seen = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append((kwargs["input_ids"].shape[1],
                                            kwargs.get("logits_to_keep"))), with_kwargs=True)
    try:
        ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(seed))
        ar = autoregressive(model, ids, 8)
        assert seen == [(6, 1)] + [(1, 1)] * 7
        seen.clear()
        jr = jacobi(model, ids, 8, block_size=4, early_exit=EarlyExit(max_iters=3))
        assert len(seen) == jr.nfe and seen[0] == (6 + 3, 4)
        assert all(0 < keep <= width for width, keep in seen)
    finally:
        hook.remove()
    assert torch.equal(ar.tokens, autoregressive(Plain(model), ids, 8).tokens)
    plain = jacobi(Plain(model), ids, 8, block_size=4, early_exit=EarlyExit(max_iters=3))
    assert torch.equal(jr.tokens, plain.tokens) and jr.nfe == plain.nfe


def test_stub_receives_block_widths():
    def rule(row, pos, prev):
        return (prev * 5 + 3) % 16

    ids = torch.tensor([[2, 7, 1]])
    keeps = RuleLM(16, rule)
    ar = autoregressive(keeps, ids, 5)
    assert keeps.kept == [1] * 5
    keeps.kept.clear()
    jr = jacobi(keeps, ids, 6, block_size=4)
    assert keeps.kept[0] == 4 and sum(jr.stats["accepted_per_iter"]) == 6
    plain = RuleLM(16, rule, takes_keep=False)
    assert torch.equal(ar.tokens, autoregressive(plain, ids, 5).tokens)
    assert torch.equal(jr.tokens, jacobi(plain, ids, 6, block_size=4).tokens)
    assert set(plain.kept) == {0}
