"""A row of a batch decodes exactly as it does alone (Jacobi early exit, masked diffusion).

Greedy, in float64: batched and single passes round differently only far below the top-2
logit gaps of these random models. ``passes_per_row`` / ``steps_per_row`` give each row's
cost alone.
"""

from __future__ import annotations

import pytest
import torch
from decoding_stubs import RuleLM

from decoding import EarlyExit, autoregressive, jacobi, masked_diffusion

EXITS = [None, EarlyExit(), EarlyExit(on_unchanged=False, tol=2),
         EarlyExit(on_unchanged=False, max_iters=2), EarlyExit(tol=1, max_iters=3)]


def _assert_rows_as_alone(decode, ids, **kw):
    """``decode(ids_rows, **kw)`` on the batch equals it on each row alone; returns the batch."""
    batch = decode(ids, **kw)
    for row in range(ids.shape[0]):
        alone = decode(ids[row:row + 1], **kw)
        assert torch.equal(batch.tokens[row], alone.tokens[0]), (row, kw)
        assert torch.equal(batch.lengths[row], alone.lengths[0]), (row, kw)
        assert batch.stats["passes_per_row"][row] == alone.nfe, (row, kw)
    assert batch.nfe >= max(batch.stats["passes_per_row"])
    return batch


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("early_exit", EXITS, ids=repr)
def test_jacobi_batch_row_equals_row_alone(gpt2_factory, seed, early_exit):
    model = gpt2_factory(seed)
    gen = torch.Generator().manual_seed(50 + seed)
    ids = torch.randint(0, 64, (4, 2 + seed), generator=gen)
    for block, init in [(4, "repeat"), (7, "prompt"), (12, "repeat")]:
        def decode(rows, block=block, init=init):
            return jacobi(model, rows, 12, block_size=block, init=init, early_exit=early_exit)

        batch = _assert_rows_as_alone(decode, ids)
        counts = batch.stats["exit_rule_counts"]
        assert sum(counts.values()) == 4 * len(batch.stats["iters_per_block"])
        if early_exit is None:  # exact: every row is its greedy AR decode
            assert torch.equal(batch.tokens, autoregressive(model, ids, 12).tokens)
            assert counts["converged"] == sum(counts.values())


@pytest.mark.parametrize("early_exit", EXITS[1:], ids=repr)
def test_jacobi_batch_rows_with_eos_and_processor(gpt2_factory, early_exit):
    model = gpt2_factory(1)
    ids = torch.randint(0, 64, (4, 3), generator=torch.Generator().manual_seed(3))
    eos = int(autoregressive(model, ids, 10).tokens[2, 5])

    def no_small_after_odd(input_ids, scores):  # pure, row-wise, context dependent
        scores = scores.clone()
        scores[input_ids[:, -1] % 2 == 1, :8] = float("-inf")
        return scores

    for block in (3, 10):
        _assert_rows_as_alone(lambda rows, b=block: jacobi(
            model, rows, 10, block_size=b, early_exit=early_exit, eos_token_id=eos,
            logits_processor=[no_small_after_odd]), ids)


def test_jacobi_early_exit_of_one_row_ignores_a_slow_neighbour():
    # Row 0's tail is right and stable after two passes (the "unchanged" rule fires for it);
    # row 1 is a Markov chain whose tail changes every pass. Judged on the batch's largest
    # tail change, row 0 would be iterated on to the fixed point instead.
    def rule(row, pos, prev):
        if row == 0:
            return prev + 1 if pos < 3 else (pos * 7) % 11
        return (prev * 5 + 3) % 16

    model = RuleLM(16, rule)
    ids = torch.tensor([[6], [9]])
    batch = jacobi(model, ids, 8, early_exit=EarlyExit())
    alone = jacobi(model, ids[:1], 8, early_exit=EarlyExit())
    assert alone.nfe == 3 and alone.stats["exit_rule_counts"]["unchanged"] == 1
    assert torch.equal(batch.tokens[0], alone.tokens[0])
    assert batch.stats["passes_per_row"][0] == 3
    assert batch.stats["exit_rule_counts"] == {"converged": 1, "unchanged": 1, "tol": 0,
                                               "max_iters": 0}


def _table_lm(seed: int) -> RuleLM:
    """Integer stub: the next token is a random table of (position, previous token).

    Tokens < 8 follow the table (few values: slow, partly stable tails), the others a rule
    of the position (fast). It reads token values only, so a row means the same alone.
    """
    table = torch.randint(0, 6, (40, 16), generator=torch.Generator().manual_seed(seed))
    return RuleLM(16, lambda row, pos, prev: int(table[pos, prev]) if prev < 8
                  else (prev * 3 + pos) % 16)


@pytest.mark.parametrize("seed", range(8))
def test_jacobi_batch_row_equals_row_alone_on_random_tables(seed):
    # Exact integer logits: no rounding, and early exit keeps approximate tokens here.
    model = _table_lm(seed)
    ids = torch.randint(0, 16, (4, 2), generator=torch.Generator().manual_seed(100 + seed))
    for early_exit in EXITS:
        for block, eos in [(4, None), (8, 5), (12, None)]:
            _assert_rows_as_alone(lambda rows, e=early_exit, b=block, s=eos: jacobi(
                model, rows, 12, block_size=b, early_exit=e, eos_token_id=s), ids)
    exact = jacobi(model, ids, 12, block_size=6)
    assert torch.equal(exact.tokens, autoregressive(model, ids, 12).tokens)


def test_random_table_early_exits_are_approximate():
    # The cases above are not trivially exact: capped iteration changes some tokens.
    changed = 0
    for seed in range(8):
        model = _table_lm(seed)
        ids = torch.randint(0, 16, (4, 2), generator=torch.Generator().manual_seed(100 + seed))
        exact = jacobi(model, ids, 12, block_size=8).tokens
        capped = jacobi(model, ids, 12, block_size=8, early_exit=EarlyExit(tol=2)).tokens
        changed += int((exact != capped).any(1).sum())
    assert changed > 0


V, MASK, L = 12, 11, 10


def _rowwise_denoiser(cond: torch.Tensor, seed: int):
    """A tiny bidirectional float64 denoiser bound to per-row observations ``cond [B, d]``.

    Rows are independent; a row's sharpness (its early-commit chance) depends on its ``cond``.
    """
    gen = torch.Generator().manual_seed(seed)
    emb, pos = torch.randn(V, 16, generator=gen, dtype=torch.float64), torch.randn(
        L, 16, generator=gen, dtype=torch.float64)
    mix, out = (torch.randn(16, 16, generator=gen, dtype=torch.float64),
                torch.randn(16, V, generator=gen, dtype=torch.float64))

    def denoiser(tokens: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(emb[tokens] + pos[:tokens.shape[1]] + cond[:, None, :16])
        h = h + torch.tanh(h.mean(1, keepdim=True) @ mix)
        return (h @ out) * cond[:, 16:17, None].exp()

    return denoiser


DIFFUSION_SETTINGS = [
    {"schedule": "cosine", "order": "confidence"},
    {"schedule": "linear", "order": "margin", "remask": True},
    {"schedule": "cosine", "order": "confidence", "early_commit_gap": 0.3},
    {"schedule": "linear", "order": "margin", "early_commit_gap": 0.6, "remask": True},
]


@pytest.mark.parametrize("settings", DIFFUSION_SETTINGS, ids=str)
@pytest.mark.parametrize("seed", range(3))
def test_diffusion_batch_row_equals_row_alone(settings, seed):
    gen = torch.Generator().manual_seed(seed)
    batch_size = 5
    cond = torch.randn(batch_size, 17, generator=gen, dtype=torch.float64) * 2
    allowed = torch.rand(batch_size, L, V, generator=gen) < 0.7
    allowed[..., 0] = True
    prefix = torch.randint(0, V - 1, (batch_size, seed), generator=gen)
    for steps in (3, 6):
        kw = {"steps": steps, "mask_id": MASK, **settings}
        extras = [{}, {"allowed": allowed}, {"prefix_tokens": prefix}]
        for extra in extras:
            batch = masked_diffusion(_rowwise_denoiser(cond, seed), L, batch_size=batch_size,
                                     **kw, **extra)
            assert batch.nfe == max(batch.stats["steps_per_row"])
            for row in range(batch_size):
                one = {k: v[row:row + 1] for k, v in extra.items()}
                alone = masked_diffusion(_rowwise_denoiser(cond[row:row + 1], seed), L, **kw,
                                         **one)
                assert torch.equal(batch.tokens[row], alone.tokens[0]), (row, steps, extra)
                assert batch.stats["early_commit_step"][row] == \
                    alone.stats["early_commit_step"][0]
                assert batch.stats["steps_per_row"][row] == alone.nfe


def test_diffusion_early_commit_is_per_row():
    # Row 0 is sharp (commits everything at the first step), row 1 flat (never does).
    cond = torch.zeros(2, 17, dtype=torch.float64)
    cond[0, 16], cond[1, 16] = 4.0, -3.0
    r = masked_diffusion(_rowwise_denoiser(cond, 0), L, steps=6, mask_id=MASK,
                         batch_size=2, early_commit_gap=0.2)
    assert r.stats["early_commit_step"][0] == 0 and r.stats["early_commit_step"][1] == -1
    assert r.stats["steps_per_row"] == [1, 6] and r.nfe == 6


def test_diffusion_ties_break_by_position_in_any_batch():
    # Every position equally confident: which stay masked must not depend on the batch.
    def flat(tokens):
        logits = torch.zeros(*tokens.shape, V, dtype=torch.float64)
        logits[..., 3] = 4.0
        return logits

    one = masked_diffusion(flat, L, steps=4, mask_id=MASK)
    many = masked_diffusion(flat, L, steps=4, mask_id=MASK, batch_size=7)
    assert torch.equal(many.tokens, one.tokens.expand(7, -1))
    assert many.stats["committed_per_step"] == [7 * c for c in one.stats["committed_per_step"]]
