"""The fast path (``predict_chunk(..., fast=True)``) gives the eager path's answers.

On CPU the fast path is the static KV cache without CUDA graphs: the same code that is captured
on CUDA (whole-graph decoders, the stepped loop over cached passes), so these tests check its
arithmetic and bookkeeping; the graphs themselves are checked on CUDA by ``robodecode bench vla
--device cuda`` (its ``max_abs_diff`` / ``tokens_identical`` columns). Token heads must give
identical tokens (hence identical actions); continuous heads agree to float rounding (the
static path attends over a padded buffer and OFT runs one pass instead of two).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from decoding import EarlyExit
from vla import fast as fast_module
from vla.data import load_chunks
from vla.fast import HostCausalLM, RawObservation, pad_batch
from vla.static_cache import StaticCache

CASES = [
    ("ar", "ar", {}), ("ar", "jacobi", {}), ("ar", "jacobi", {"early_exit": EarlyExit()}),
    ("ar", "jacobi", {"early_exit": EarlyExit(on_unchanged=False, max_iters=2)}),
    ("ar", "ar", {"temperature": 0.7, "top_k": 20}),
    ("diffusion", "diffusion", {"steps": 2}), ("diffusion", "diffusion", {"steps": 8}),
    ("flow", "flow", {"steps": 2}), ("flow", "flow", {"steps": 3, "solver": "heun"}),
    ("oft", "oft", {}),
]


def _obs(synthetic, model, idx):
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    return data.obs_dict(list(idx))


def _run(model, obs, decoder, kwargs, fast, seed=0):
    kw = dict(kwargs)
    if decoder in ("flow", "diffusion") or kw.get("temperature"):
        kw["generator"] = torch.Generator().manual_seed(seed)
    return model.predict_chunk(obs, decoder, fast=fast, **kw)


@pytest.mark.parametrize(("head", "decoder", "kwargs"), CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_path_equals_eager(head, decoder, kwargs, batch, make_model, synthetic):
    model = make_model(head, seed=1)
    obs = _obs(synthetic, model, range(batch))
    eager, st_e = _run(model, obs, decoder, kwargs, fast=False)
    for _ in range(2):  # a second call reuses the engine (buffers, cache) of the first
        fast, st_f = _run(model, obs, decoder, kwargs, fast=True)
        assert st_f["path"] in ("static-cache", "whole-graph", "stepped-graphs")
        assert st_e["path"] == "eager"
        assert st_f["nfe"] == st_e["nfe"]
        assert fast.shape == eager.shape == (batch, model.config.horizon, 4)
        if head in ("ar", "diffusion"):  # same tokens: same bin centres, exactly
            np.testing.assert_array_equal(fast, eager)
        else:
            np.testing.assert_allclose(fast, eager, atol=2e-5, rtol=0)


@pytest.mark.parametrize(("head", "decoder", "kwargs"), [
    ("ar", "ar", {}), ("ar", "jacobi", {"early_exit": EarlyExit()}),
    ("diffusion", "diffusion", {"steps": 4}), ("oft", "oft", {})])
def test_fast_path_takes_real_time_chunking_prefixes(head, decoder, kwargs, make_model,
                                                     synthetic):
    model = make_model(head, seed=2)
    obs = _obs(synthetic, model, range(2))
    prev = np.asarray(model.predict_chunk(obs, decoder, **kwargs)[0][:, 1:])
    outs = [model.predict_chunk(obs, decoder, fast=fast, prefix_actions=prev, frozen_steps=2,
                                **kwargs) for fast in (False, True)]
    (eager, st_e), (fast, st_f) = outs
    assert st_f["path"] != "eager" and st_f["frozen_steps"] == st_e["frozen_steps"] == 2
    assert st_f["nfe"] == st_e["nfe"]
    np.testing.assert_allclose(fast, eager, atol=2e-5, rtol=0)


def test_flow_with_a_prefix_runs_eagerly_and_says_so(make_model, synthetic):
    model = make_model("flow", seed=3)
    obs = _obs(synthetic, model, range(1))
    prev = np.asarray(model.predict_chunk(obs, "flow", steps=2)[0][:, 1:])
    _, st = model.predict_chunk(obs, "flow", fast=True, steps=2, prefix_actions=prev,
                                frozen_steps=1)
    assert st["path"] == "eager"


def test_fast_path_refuses_what_the_eager_path_refuses(make_model, synthetic):
    model = make_model("ar")
    obs = _obs(synthetic, model, range(1))
    bad = dict(obs, state=np.full((1, 7), np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        model.predict_chunk(bad, "ar", fast=True)
    with pytest.raises(ValueError, match="uint8"):
        model.predict_chunk(dict(obs, image=obs["image"].float()), "ar", fast=True)
    with pytest.raises(ValueError, match="does not apply"):
        model.predict_chunk(obs, "flow", fast=True)


def test_engines_are_per_shape_and_copies_build_their_own(make_model, synthetic):
    model = make_model("oft")
    a = model.predict_chunk(_obs(synthetic, model, range(1)), "oft", fast=True)[0]
    b = model.predict_chunk(_obs(synthetic, model, range(4)), "oft", fast=True)[0]
    assert len(model._fast.engines) == 2
    np.testing.assert_allclose(a[0], b[0], atol=2e-5)
    twin = copy.deepcopy(model)
    assert twin._fast is None
    c = twin.predict_chunk(_obs(synthetic, model, range(1)), "oft", fast=True)[0]
    np.testing.assert_allclose(a, c, atol=0)


def test_static_cache_bookkeeping():
    cache = StaticCache(n_layers=1, batch=2, n_heads=1, head_dim=4, capacity=6,
                        dtype=torch.float32, device="cpu")
    cache.seek(5)
    cache.crop(-2)  # the decoders' form: drop the last two
    assert cache.get_seq_length() == 3 and int(cache.start) == 3
    cache.crop(1)  # the old absolute form
    assert cache.get_seq_length() == 1 and int(cache.start) == 1
    with pytest.raises(ValueError, match="exceed"):
        cache.check_room(6)
    with pytest.raises(RuntimeError, match="begin_pass"):
        cache.write(0, torch.zeros(2, 2, 1, 1, 4))
    pos, mask = cache.begin_pass(2, causal=True)
    assert pos.tolist() == [1, 2]
    assert torch.isinf(mask).tolist() == [[False, False, True, True, True, True],
                                          [False, False, False, True, True, True]]
    _, mask = cache.begin_pass(2, causal=False)
    assert torch.isinf(mask[0]).tolist() == [False, False, False, True, True, True]


def test_pad_batch_repeats_the_last_row():
    raw = RawObservation([torch.arange(3).view(3, 1, 1, 1).to(torch.uint8)],
                         torch.arange(6.0).view(3, 2), torch.ones(3, 5))
    padded = pad_batch(raw, 4)
    assert padded.batch_size == 4
    assert padded.images[0].flatten().tolist() == [0, 1, 2, 2]
    assert pad_batch(raw, 3) is raw


@pytest.mark.parametrize("kwargs", [{}, {"early_exit": EarlyExit()},
                                    {"early_exit": EarlyExit(tol=1, max_iters=3)}])
def test_host_loop_gives_the_device_loop_tokens(kwargs, make_model, synthetic, monkeypatch):
    """The AR head's host loop decodes the same tokens with the same passes.

    Ids and logits live on the CPU, passes on the device (here run directly, not replayed).
    """
    used = []

    def host_lm(model, cache, batch):
        used.append(HostCausalLM(model, cache, graphs=False))
        return used[-1]

    monkeypatch.setattr(fast_module, "host_lm_for", host_lm)
    model = make_model("ar", seed=4)
    obs = _obs(synthetic, model, range(3))
    # "ar" with an explicit setting takes the stepped path, which uses the host loop.
    for decoder, kw in (("jacobi", kwargs), ("ar", {"temperature": 0.0})):
        eager, st_e = model.predict_chunk(obs, decoder, **kw)
        fast, st_f = model.predict_chunk(obs, decoder, fast=True, **kw)
        np.testing.assert_array_equal(fast, eager)
        assert st_f["nfe"] == st_e["nfe"]
    assert used
