"""Sampling warpers, and AR / Speculative-Jacobi samples against the exact AR distribution.

The distribution test is statistical, with a fixed seed and a stated tolerance.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from decoding_stubs import make_gpt2

from decoding import EarlyExit, autoregressive, jacobi
from decoding.sampling import sampling_probs

VOCAB, N_TOKENS, SAMPLES = 6, 3, 6000
# Total-variation tolerance on the joint of the first 3 tokens (216 cells). With 6000 samples
# sampling noise alone gave TV 0.01-0.02 here (exact AR sampling and Jacobi, two seeds).
TV_TOL = 0.045


def test_sampling_probs_top_k_top_p_temperature():
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.allclose(sampling_probs(scores, 1.0), torch.tensor([[0.5, 0.3, 0.15, 0.05]],
                                                                    dtype=torch.float64))
    top2 = sampling_probs(scores, 1.0, top_k=2)
    assert torch.allclose(top2, torch.tensor([[0.625, 0.375, 0, 0]], dtype=torch.float64))
    nucleus = sampling_probs(scores, 1.0, top_p=0.7)  # 0.5 < 0.7 <= 0.8: two tokens
    assert torch.allclose(nucleus, top2)
    assert torch.allclose(sampling_probs(scores, 1.0, top_p=0.5)[0, 0], torch.tensor(1.0,
                                                                                     dtype=torch.float64))
    sharp = sampling_probs(scores, 0.5)
    expected = torch.tensor([0.25, 0.09, 0.0225, 0.0025], dtype=torch.float64)
    assert torch.allclose(sharp[0], expected / expected.sum())
    masked = scores.clone()
    masked[0, 0] = float("-inf")
    assert sampling_probs(masked, 1.0, top_p=0.9)[0, 0] == 0


def _exact_joint(model, prompt, top_k=None):
    """P(x1, x2, x3 | prompt) for AR sampling at temperature 1, by enumeration."""
    joint = {}
    with torch.no_grad():
        for prefix_len in range(N_TOKENS):
            seqs = list(itertools.product(range(VOCAB), repeat=prefix_len))
            ids = torch.tensor([list(prompt) + list(s) for s in seqs])
            probs = sampling_probs(model(input_ids=ids).logits[:, -1], 1.0, top_k)
            for s, p in zip(seqs, probs, strict=True):
                base = joint.get(s, 1.0) if prefix_len else 1.0
                for tok in range(VOCAB):
                    joint[(*s, tok)] = base * float(p[tok])
    return {k: v for k, v in joint.items() if len(k) == N_TOKENS}


def _tv(tokens, exact):
    counts = {}
    for row in tokens.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    keys = set(exact) | set(counts)
    return 0.5 * sum(abs(counts.get(k, 0) / len(tokens) - exact.get(k, 0.0)) for k in keys)


@pytest.fixture(scope="module")
def small_vocab_model():
    return make_gpt2(3, vocab=VOCAB).float()


def test_jacobi_sampling_matches_ar_distribution(small_vocab_model):
    model, prompt = small_vocab_model, (1, 4)
    exact = _exact_joint(model, prompt)
    ids = torch.tensor([prompt]).expand(SAMPLES, -1)
    gen = torch.Generator().manual_seed(0)
    ar = autoregressive(model, ids, N_TOKENS, temperature=1.0, generator=gen)
    assert _tv(ar.tokens, exact) < TV_TOL
    for block, init in [(3, "repeat"), (2, "random"), (3, "prompt")]:
        jr = jacobi(model, ids, N_TOKENS, block_size=block, temperature=1.0, init=init,
                    generator=gen)
        assert _tv(jr.tokens, exact) < TV_TOL, (block, init)
        assert jr.nfe <= N_TOKENS
    # Power check: skipping verification (keep the first iterate) is visibly biased.
    biased = jacobi(model, ids, N_TOKENS, temperature=1.0, generator=gen,
                    early_exit=EarlyExit(on_unchanged=False, max_iters=1))
    assert _tv(biased.tokens, exact) > 2 * TV_TOL


def test_jacobi_top_k_sampling_matches(small_vocab_model):
    model, prompt = small_vocab_model, (2,)
    exact = _exact_joint(model, prompt, top_k=3)
    ids = torch.tensor([prompt]).expand(SAMPLES, -1)
    gen = torch.Generator().manual_seed(1)
    jr = jacobi(model, ids, N_TOKENS, temperature=1.0, top_k=3, generator=gen)
    assert _tv(jr.tokens, exact) < TV_TOL
    ar = autoregressive(model, ids, N_TOKENS, temperature=1.0, top_k=3, generator=gen)
    assert _tv(ar.tokens, exact) < TV_TOL
