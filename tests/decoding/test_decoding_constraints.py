"""Constraints: HF LogitsProcessors plug in; constrained decoders never emit a forbidden token.

Property tests use hypothesis; processors see the documented context.
"""

from __future__ import annotations

import pytest
import torch
from decoding_stubs import make_gpt2
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import EarlyExit, autoregressive, jacobi, masked_diffusion

VOCAB = 16


@pytest.fixture(scope="module")
def model():
    return make_gpt2(5, vocab=VOCAB)


class NoRepeatAfter:
    """Pure, context-dependent constraint: forbids ``(last * mult + k) % V`` and ``banned``.

    ``k`` runs over ``offsets``; ``last`` is the token before the one being chosen.
    """

    def __init__(self, mult: int, offsets: list[int], banned: list[int]) -> None:
        self.mult, self.offsets, self.banned = mult, offsets, banned

    def forbidden(self, last: int) -> set[int]:
        return {(last * self.mult + k) % VOCAB for k in self.offsets} | set(self.banned)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        for b, last in enumerate(input_ids[:, -1].tolist()):
            scores[b, sorted(self.forbidden(last))] = float("-inf")
        return scores


def _assert_respects(proc, ids, tokens, lengths=None):
    seq = torch.cat([ids, tokens], dim=1)
    for b in range(seq.shape[0]):
        stop = tokens.shape[1] if lengths is None else int(lengths[b])
        for j in range(stop):
            pos = ids.shape[1] + j
            assert int(seq[b, pos]) not in proc.forbidden(int(seq[b, pos - 1])), (b, j)


def test_hf_logits_processors_match_generate(model):
    from transformers import (
        LogitsProcessorList,
        NoBadWordsLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
    )

    procs = [RepetitionPenaltyLogitsProcessor(2.0),
             NoBadWordsLogitsProcessor([[3], [7]], eos_token_id=None)]
    ids = torch.tensor([[1, 2, 5], [9, 9, 4]])
    expected = model.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=0,
                              eos_token_id=None, logits_processor=LogitsProcessorList(procs),
                              attention_mask=torch.ones_like(ids))[:, 3:]
    ar = autoregressive(model, ids, 10, logits_processor=procs)
    assert torch.equal(ar.tokens, expected)
    for block in (3, 10):
        assert torch.equal(jacobi(model, ids, 10, block_size=block,
                                  logits_processor=LogitsProcessorList(procs)).tokens, expected)
    assert not {3, 7} & set(ar.tokens.flatten().tolist())


def test_jacobi_processor_sees_accepted_prefix_plus_guesses(model):
    seen = []

    def spy(input_ids, scores):
        seen.append(input_ids.clone())
        return scores

    ids = torch.tensor([[1, 2]])
    r = jacobi(model, ids, 4, logits_processor=[spy])
    # First pass: position i sees input_ids + the i initial guesses (repeat of the last token).
    assert [s.tolist() for s in seen[:4]] == [[[1, 2]], [[1, 2, 2]], [[1, 2, 2, 2]],
                                              [[1, 2, 2, 2, 2]]]
    # Every call's context starts with the input and the tokens accepted so far.
    final = torch.cat([ids, r.tokens], dim=1)
    assert all(torch.equal(s[:, :2], ids) for s in seen)
    assert any(torch.equal(s, final[:, :-1]) for s in seen)


@settings(max_examples=30)
@given(mult=st.integers(1, 7), offsets=st.lists(st.integers(0, 15), min_size=1, max_size=10),
       banned=st.lists(st.integers(0, 15), max_size=4), prompt=st.lists(st.integers(0, 15),
                                                                        min_size=1, max_size=4),
       block=st.integers(1, 8), greedy=st.booleans(), relaxed=st.booleans(),
       eos=st.one_of(st.none(), st.integers(0, 15)))
def test_constrained_ar_and_jacobi_never_emit_forbidden(model, mult, offsets, banned, prompt,
                                                        block, greedy, relaxed, eos):
    if len(set(offsets) | set(banned)) >= VOCAB - 1:
        return  # leave at least two tokens allowed in every context
    proc = NoRepeatAfter(mult, offsets, banned)
    ids = torch.tensor([prompt, prompt[::-1]])
    gen = torch.Generator().manual_seed(len(offsets))
    temp = 0.0 if greedy else 1.0
    ar = autoregressive(model, ids, 8, temperature=temp, logits_processor=[proc], generator=gen,
                        eos_token_id=eos)
    _assert_respects(proc, ids, ar.tokens, ar.lengths)
    ee = EarlyExit(on_unchanged=True, tol=2, max_iters=2) if relaxed else None
    jr = jacobi(model, ids, 8, block_size=block, temperature=temp, early_exit=ee,
                logits_processor=[proc], generator=gen, eos_token_id=eos)
    _assert_respects(proc, ids, jr.tokens, jr.lengths)
    if greedy and not relaxed:
        assert torch.equal(jr.tokens, ar.tokens) and torch.equal(jr.lengths, ar.lengths)


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 9), steps=st.integers(1, 6),
       order=st.sampled_from(["confidence", "margin", "random"]), remask=st.booleans(),
       temperature=st.sampled_from([0.0, 1.0]))
def test_masked_diffusion_respects_position_constraints(seed, length, steps, order, remask,
                                                       temperature):
    gen = torch.Generator().manual_seed(seed)
    allowed = torch.rand(2, length, VOCAB, generator=gen) < 0.3
    allowed[..., seed % (VOCAB - 1)] = True  # one token besides the mask everywhere
    weights = torch.randn(VOCAB + 1, VOCAB, generator=gen) * 3

    def denoiser(tokens):
        return weights[tokens] + weights[tokens.roll(1, dims=1)]

    r = masked_diffusion(denoiser, length, steps=steps, mask_id=VOCAB - 1, batch_size=2,
                         order=order, remask=remask, temperature=temperature,
                         choice_temperature=1.0, allowed=allowed, generator=gen)
    assert r.nfe <= steps
    picked = allowed.gather(-1, r.tokens[..., None])[..., 0]
    assert bool(picked.all())
    assert not bool((r.tokens == VOCAB - 1).any())
