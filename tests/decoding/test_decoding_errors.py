"""Bad input raises ValueError naming the argument; the adapter fits installed transformers."""

from __future__ import annotations

import warnings

import pytest
import torch
from decoding_stubs import make_gpt2

from decoding import EarlyExit, adapter, autoregressive, flow_sample, jacobi, masked_diffusion


@pytest.fixture(scope="module")
def model():
    return make_gpt2(0, vocab=16)


@pytest.mark.parametrize("decoder", [autoregressive, jacobi])
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"input_ids": torch.tensor([1, 2])}, "input_ids"),
    ({"input_ids": torch.tensor([[1.0, 2.0]])}, "input_ids"),
    ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, "input_ids"),
    ({"input_ids": [[1, 2]]}, "input_ids"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
    ({"eos_token_id": -3}, "eos_token_id"),
    ({"logits_processor": 5}, "logits_processor"),
])
def test_token_decoders_reject_bad_input(model, decoder, kwargs, name):
    args = {"input_ids": torch.tensor([[1, 2]]), "max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        decoder(model, args.pop("input_ids"), args.pop("max_new_tokens"), **args)


def test_jacobi_specific_errors(model):
    ids = torch.tensor([[1, 2]])
    for kwargs, name in [({"block_size": 0}, "block_size"), ({"init": "zeros"}, "init"),
                         ({"early_exit": 3}, "early_exit")]:
        with pytest.raises(ValueError, match=name):
            jacobi(model, ids, 4, **kwargs)
    with pytest.raises(ValueError, match="tol"):
        EarlyExit(tol=-1)
    with pytest.raises(ValueError, match="max_iters"):
        EarlyExit(max_iters=0)


@pytest.mark.parametrize("decoder", [autoregressive, jacobi])
def test_processor_masking_everything_raises(model, decoder):
    def mask_all(input_ids, scores):
        return torch.full_like(scores, float("-inf"))

    with pytest.raises(ValueError, match="logits_processor masked every token"):
        decoder(model, torch.tensor([[1, 2]]), 4, logits_processor=[mask_all])


def test_jacobi_processor_masking_only_wrong_guess_contexts_is_fine(model):
    # Everything is forbidden after token 15, which the greedy continuation never produces but
    # a random initial guess may: only contexts made of accepted tokens must be satisfiable.
    def dead_after_15(input_ids, scores):
        scores = scores.clone()
        scores[:, 15] = float("-inf")
        scores[input_ids[:, -1] == 15] = float("-inf")
        return scores

    ids = torch.tensor([[1, 2]])
    expected = autoregressive(model, ids, 6, logits_processor=[dead_after_15]).tokens
    got = jacobi(model, ids, 6, init="random", logits_processor=[dead_after_15],
                 generator=torch.Generator().manual_seed(0), vocab_size=16)
    assert torch.equal(got.tokens, expected)


def test_masked_diffusion_errors():
    def denoiser(tokens):
        return torch.zeros(*tokens.shape, 8)

    for kwargs, name in [({"steps": 0}, "steps"), ({"mask_id": 8}, "mask_id"),
                         ({"mask_id": -1}, "mask_id"), ({"schedule": "exp"}, "schedule"),
                         ({"order": "left"}, "order"), ({"early_commit_gap": 2.0},
                                                        "early_commit_gap")]:
        args = {"steps": 4, "mask_id": 7, **kwargs}
        with pytest.raises(ValueError, match=name):
            masked_diffusion(denoiser, 5, **args)
    with pytest.raises(ValueError, match="length"):
        masked_diffusion(denoiser, 0, steps=2, mask_id=7)
    only_mask = torch.zeros(5, 8, dtype=torch.bool)
    only_mask[:, 7] = True
    with pytest.raises(ValueError, match="allowed"):
        masked_diffusion(denoiser, 5, steps=2, mask_id=7, allowed=only_mask)
    with pytest.raises(ValueError, match="mask_id"):
        masked_diffusion(denoiser, 5, steps=2, mask_id=9, allowed=torch.ones(5, 8,
                                                                             dtype=torch.bool))


def test_flow_errors():
    def velocity(x, t):
        return x

    for kwargs, name in [({"steps": 0}, "steps"), ({"solver": "rk4"}, "solver"),
                         ({"schedule": [0, 0.5, 1.0]}, "schedule"),
                         ({"schedule": [0, 0.6, 0.5, 1.0]}, "schedule"),
                         ({"x0": torch.zeros(3)}, "x0")]:
        args = {"steps": 3, **kwargs}
        with pytest.raises(ValueError, match=name):
            flow_sample(velocity, (2, 2), **args)


def test_adapter_matches_installed_transformers(model, monkeypatch):
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    assert adapter.USES_CACHE_KWARG == ((major, minor) >= (5, 24))
    ids = torch.tensor([[3, 4, 5]])
    logits, cache = adapter.forward(model, ids, None)
    assert isinstance(cache, transformers.DynamicCache) and adapter.cache_length(cache) == 3
    adapter.crop_to(cache, 1)
    assert adapter.cache_length(cache) == 1
    # The legacy keyword path still works on this version (with a deprecation warning).
    monkeypatch.setattr(adapter, "USES_CACHE_KWARG", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        legacy, legacy_cache = adapter.forward(model, ids, None)
    assert torch.allclose(legacy, logits) and adapter.cache_length(legacy_cache) == 3
    assert adapter.vocab_size(model) == 16
