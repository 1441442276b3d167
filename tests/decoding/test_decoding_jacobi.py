"""Greedy Jacobi == greedy AR, prefix caches untouched, KV-cache AR == recompute, nfe."""

from __future__ import annotations

import pytest
import torch
from decoding_stubs import RuleLM

from decoding import EarlyExit, adapter, autoregressive, jacobi


def _reference_ar(model, ids, n):
    """Greedy AR recomputing the whole sequence each step (no KV cache)."""
    seq = ids
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=seq, use_cache=False).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, ids.shape[1]:]


CASES = [  # (seed, batch, prompt length, new tokens)
    (0, 1, 1, 9), (1, 2, 3, 12), (2, 3, 6, 7), (3, 4, 2, 10), (4, 2, 8, 11), (5, 1, 4, 12),
]


@pytest.mark.parametrize(("seed", "batch", "prompt", "n"), CASES)
def test_greedy_jacobi_equals_greedy_ar(gpt2_factory, seed, batch, prompt, n):
    model = gpt2_factory(seed)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (batch, prompt), generator=gen)
    ar = autoregressive(model, ids, n)
    assert ar.nfe == n
    for block, init in [(1, "repeat"), (3, "prompt"), (n, "random"), (n + 3, "repeat")]:
        jr = jacobi(model, ids, n, block_size=block, init=init, generator=gen)
        assert torch.equal(jr.tokens, ar.tokens), (block, init)
        assert jr.nfe <= ar.nfe
        assert sum(jr.stats["iters_per_block"]) == jr.nfe
        assert sum(jr.stats["accepted_per_iter"]) == n


@pytest.mark.parametrize("seed", range(3))
def test_kv_cache_ar_equals_recompute(gpt2_factory, seed):
    model = gpt2_factory(seed)
    ids = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(autoregressive(model, ids, 10).tokens, _reference_ar(model, ids, 10))


def _prefix(model, ids):
    _, cache = adapter.forward(model, ids, None)
    return cache


def _snapshot(cache):
    return [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]


@pytest.mark.parametrize("seed", range(3))
def test_prefix_cache_decodes_match_and_cache_unchanged(gpt2_factory, seed):
    model = gpt2_factory(seed)
    gen = torch.Generator().manual_seed(100 + seed)
    batch = 1 + seed % 3
    prefix = torch.randint(0, 64, (batch, 5), generator=gen)
    ids = torch.randint(0, 64, (batch, 1 + seed % 2), generator=gen)
    expected = autoregressive(model, torch.cat([prefix, ids], 1), 10).tokens
    cache = _prefix(model, prefix)
    before = _snapshot(cache)
    runs = [autoregressive(model, ids, 10, cache=cache),
            autoregressive(model, ids, 10, cache=cache, temperature=1.0, generator=gen),
            jacobi(model, ids, 10, block_size=4, cache=cache),
            jacobi(model, ids, 10, block_size=3, cache=cache, temperature=0.7, generator=gen),
            jacobi(model, ids, 10, block_size=10, cache=cache, early_exit=EarlyExit(max_iters=2))]
    assert torch.equal(runs[0].tokens, expected)
    assert torch.equal(runs[2].tokens, expected)
    assert cache.get_seq_length() == 5
    for (k0, v0), layer in zip(before, cache.layers, strict=True):
        assert torch.equal(k0, layer.keys) and torch.equal(v0, layer.values)


def test_cache_restored_after_error(gpt2_factory):
    model = gpt2_factory(0)
    cache = _prefix(model, torch.tensor([[1, 2, 3]]))

    def explode(input_ids, scores):
        if input_ids.shape[1] > 3:
            raise RuntimeError("boom")
        return scores

    with pytest.raises(RuntimeError):
        jacobi(model, torch.tensor([[4]]), 8, logits_processor=[explode], cache=cache)
    assert cache.get_seq_length() == 3


def test_eos_lengths_and_padding_match(gpt2_factory):
    model = gpt2_factory(1)
    ids = torch.randint(0, 64, (3, 2), generator=torch.Generator().manual_seed(7))
    free = autoregressive(model, ids, 12).tokens
    eos = int(free[1, 4])
    ar = autoregressive(model, ids, 12, eos_token_id=eos)
    assert int(ar.lengths[1]) <= 5
    for row in range(3):
        length = int(ar.lengths[row])
        assert bool((ar.tokens[row, length:] == eos).all())
        assert eos not in ar.tokens[row, :length - 1].tolist()
    for block in (1, 3, 12):
        jr = jacobi(model, ids, 12, block_size=block, eos_token_id=eos)
        assert torch.equal(jr.tokens, ar.tokens) and torch.equal(jr.lengths, ar.lengths)
        assert jr.nfe <= ar.nfe


def test_nfe_counts_every_model_call():
    model = RuleLM(16, lambda row, pos, prev: (prev * 5 + 3) % 16)
    ids = torch.tensor([[2, 7]])
    ar = autoregressive(model, ids, 6)
    assert ar.nfe == model.calls == 6
    model.calls = 0
    jr = jacobi(model, ids, 6, block_size=3)
    assert jr.nfe == model.calls
    assert torch.equal(jr.tokens, ar.tokens)


def test_fast_forward_accepts_whole_blocks():
    # Next token depends on position only: the first pass predicts the whole block right and
    # the second verifies it (a fixed point needs two equal iterates).
    model = RuleLM(16, lambda row, pos, prev: (pos * 3 + 1) % 16)
    ids = torch.tensor([[5, 6, 7]])
    ar = autoregressive(model, ids, 12)
    jr = jacobi(model, ids, 12, block_size=4)
    assert torch.equal(jr.tokens, ar.tokens)
    assert jr.nfe == 6 and jr.stats["iters_per_block"] == [2, 2, 2]
    assert jr.stats["exit_rule_counts"]["converged"] == 3


def test_batch_rows_converging_at_different_speeds():
    # Row 0 converges in one pass per block, row 1 one token per pass (Markov chain).
    def rule(row, pos, prev):
        return (pos * 3 + 1) % 16 if row == 0 else (prev * 5 + 3) % 16

    model = RuleLM(16, rule)
    ids = torch.tensor([[5, 6], [9, 1]])
    ar = autoregressive(model, ids, 10)
    for block in (2, 5, 10):
        jr = jacobi(model, ids, 10, block_size=block)
        assert torch.equal(jr.tokens, ar.tokens), block
        assert jr.nfe <= 10


def test_early_exit_rules_and_stats(gpt2_factory):
    model = gpt2_factory(2)
    ids = torch.tensor([[3, 4, 5]])
    capped = jacobi(model, ids, 12, block_size=4,
                    early_exit=EarlyExit(on_unchanged=False, max_iters=1))
    assert capped.nfe == 3 and capped.stats["iters_per_block"] == [1, 1, 1]
    assert capped.stats["exit_rule_counts"]["max_iters"] >= 1
    assert capped.tokens.shape == (1, 12)
    tol = jacobi(model, ids, 12, block_size=4, early_exit=EarlyExit(on_unchanged=False, tol=4))
    assert tol.nfe == 3 and tol.stats["exit_rule_counts"]["tol"] >= 1
    relaxed = jacobi(model, ids, 12, block_size=6, early_exit=EarlyExit(max_iters=3))
    exact = jacobi(model, ids, 12, block_size=6)
    assert relaxed.nfe <= min(exact.nfe, 6)
    assert sum(relaxed.stats["exit_rule_counts"].values()) == len(
        relaxed.stats["iters_per_block"])
    # The first accepted token of every block is exact, so the first token always matches.
    assert int(relaxed.tokens[0, 0]) == int(exact.tokens[0, 0])


def test_unchanged_rule_fires_when_tail_is_stable():
    # Counting up for the first positions, then a function of the position only: after two
    # passes the tail is right and stable while the head is still being corrected.
    model = RuleLM(16, lambda row, pos, prev: prev + 1 if pos < 3 else pos % 5)
    ids = torch.tensor([[6]])
    exact = jacobi(model, ids, 8)
    relaxed = jacobi(model, ids, 8, early_exit=EarlyExit())
    assert exact.nfe == 4 and relaxed.nfe == 3
    assert relaxed.stats["exit_rule_counts"]["unchanged"] == 1
    assert torch.equal(relaxed.tokens, exact.tokens)
