"""Real-time chunking through ``predict_chunk``: every head takes the committed actions.

Token heads reproduce the committed steps exactly (their bin centres) and decode only the
rest (``nfe`` excludes them); flow lands on them within a tolerance; OFT replaces its first
``d`` steps by them and leaves the rest as it was. Without ``prefix_actions`` nothing changes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decoding import EarlyExit
from vla.data import load_chunks


def _obs(synthetic, model, n=3):
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    return data.obs_dict(range(n))


def _committed(model, n=3, m=3, seed=0):
    """Committed env-unit actions (n, m, D) spread over the action range."""
    rng = np.random.default_rng(seed)
    lo, hi = model.tokenizer.q01.numpy(), model.tokenizer.q99.numpy()
    return (lo + (hi - lo) * rng.uniform(0.05, 0.95, (n, m, len(lo)))).astype(np.float32)


def _bin_centres(model, actions):
    """What a token decoder can reproduce: the actions' bin centres, in env units."""
    ids = model.tokenizer.bin_ids(model.tokenizer.normalize(torch.as_tensor(actions)))
    return model.tokenizer.unnormalize(model.tokenizer.bin_centers(ids)).numpy()


@pytest.mark.parametrize(("head", "decoder", "kwargs"), [
    ("ar", "ar", {}), ("ar", "jacobi", {}), ("ar", "jacobi", {"early_exit": EarlyExit()}),
    ("diffusion", "diffusion", {"steps": 2}), ("diffusion", "diffusion", {"steps": 8})])
@pytest.mark.parametrize("d", [1, 3])
def test_token_heads_reproduce_the_committed_steps_exactly(head, decoder, kwargs, d, make_model,
                                                           synthetic):
    model = make_model(head).eval()
    obs, prev = _obs(synthetic, model), _committed(model)
    plain, plain_stats = model.predict_chunk(obs, decoder=decoder, **kwargs)
    actions, stats = model.predict_chunk(obs, decoder=decoder, prefix_actions=prev,
                                         frozen_steps=d, **kwargs)
    np.testing.assert_array_equal(actions[:, :d], _bin_centres(model, prev[:, :d]))
    assert stats["frozen_steps"] == d and "frozen_steps" not in plain_stats
    n, dim = model.config.n_action_tokens, model.config.action_dim
    if decoder == "ar":
        assert plain_stats["nfe"] == n and stats["nfe"] == n - d * dim
    else:
        assert stats["nfe"] <= (n - d * dim if decoder == "jacobi" else kwargs["steps"])
    assert not np.array_equal(actions[:, :d], plain[:, :d])


def test_greedy_jacobi_with_prefix_equals_greedy_ar_with_prefix(make_model, synthetic):
    model = make_model("ar", seed=1).double().eval()
    with torch.no_grad():
        model.head.lm_head.weight.mul_(30)
    obs, prev = _obs(synthetic, model), _committed(model, seed=1)
    ar, _ = model.predict_chunk(obs, decoder="ar", prefix_actions=prev, frozen_steps=2)
    jac, stats = model.predict_chunk(obs, decoder="jacobi", prefix_actions=prev,
                                     frozen_steps=2)
    np.testing.assert_array_equal(jac, ar)
    assert stats["nfe"] <= model.config.n_action_tokens - 2 * model.config.action_dim


def test_flow_inpainting_lands_near_the_committed_steps(make_model, synthetic):
    model = make_model("flow").eval()
    obs, prev = _obs(synthetic, model, n=4), _committed(model, n=4)
    gen = {"generator": torch.Generator().manual_seed(0)}
    plain, _ = model.predict_chunk(obs, decoder="flow", steps=5, **gen)
    gen = {"generator": torch.Generator().manual_seed(0)}
    actions, stats = model.predict_chunk(obs, decoder="flow", steps=5, prefix_actions=prev,
                                         frozen_steps=2, **gen)
    assert stats["nfe"] == 5 and stats["decoder_guided"] and stats["frozen_steps"] == 2
    z = model.tokenizer.normalize
    err = (z(torch.as_tensor(actions[:, :2])) - z(torch.as_tensor(prev[:, :2]))).abs()
    before = (z(torch.as_tensor(plain[:, :2])) - z(torch.as_tensor(prev[:, :2]))).abs()
    # Stated tolerance (normalized units, [-1, 1] range): mean |err| < 0.1 on the frozen steps.
    assert float(err.mean()) < 0.1 < float(before.mean()), (float(err.mean()),
                                                          float(before.mean()))


def test_oft_replaces_its_first_steps_and_keeps_the_rest(make_model, synthetic):
    model = make_model("oft").eval()
    obs, prev = _obs(synthetic, model), _committed(model)
    plain, _ = model.predict_chunk(obs)
    actions, stats = model.predict_chunk(obs, prefix_actions=prev, frozen_steps=2)
    np.testing.assert_allclose(actions[:, :2], prev[:, :2], atol=1e-5)
    np.testing.assert_array_equal(actions[:, 2:], plain[:, 2:])
    assert stats["nfe"] == 1 and stats["decoder_frozen_replaced"] == 2


def test_prefix_is_validated(make_model, synthetic):
    model = make_model("ar").eval()
    obs, prev = _obs(synthetic, model), _committed(model)
    plain, _ = model.predict_chunk(obs)
    same, _ = model.predict_chunk(obs, prefix_actions=prev, frozen_steps=0)
    np.testing.assert_array_equal(same, plain)  # d = 0: nothing frozen
    one, _ = model.predict_chunk(obs, prefix_actions=prev[0, :1])  # (m, D), frozen = m
    np.testing.assert_array_equal(one[:, 0], np.repeat(_bin_centres(model, prev[0, :1]), 3, 0))
    for bad, match in [({"prefix_actions": prev, "frozen_steps": 4}, "frozen_steps"),
                       ({"prefix_actions": _committed(model, m=4)}, "frozen_steps"),
                       ({"prefix_actions": prev[..., :2]}, "prefix_actions"),
                       ({"prefix_actions": prev * np.nan}, "non-finite"),
                       ({"frozen_steps": 1}, "needs prefix_actions"),
                       ({"prefix_actions": prev[:2]}, "rows")]:
        with pytest.raises(ValueError, match=match):
            model.predict_chunk(obs, **bad)
