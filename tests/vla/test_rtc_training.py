"""Training-time real-time chunking of the OFT head (``VLAConfig.rtc_train_max``).

The head learns to continue committed actions: on data whose chunk cannot be told from the
observation but is fixed by its first step, the trained head's later steps follow the committed
first step; the committed steps themselves come back exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.config import preset
from vla.data import load_chunks


def _obs_and_batch(synthetic, model, n):
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    lang = model.instructions.embed(data.instructions)
    obs, _, pad = data.batch(torch.arange(n), lang, model.config.image_size)
    return data.obs_dict(range(n)), obs, pad


def test_rtc_train_max_is_validated():
    with pytest.raises(ValueError, match="rtc_train_max"):
        preset("tiny", head="oft", rtc_train_max=4)  # tiny: H = 4
    with pytest.raises(ValueError, match="oft head only"):
        preset("tiny", head="ar", rtc_train_max=2)
    assert preset("tiny", head="oft", rtc_train_max=3).rtc_train_max == 3


def test_untrained_prefix_mode_keeps_committed_steps_and_changes_the_rest(make_model, synthetic):
    model = make_model("oft", rtc_train_max=3).eval()
    obs, _, _ = _obs_and_batch(synthetic, model, 3)
    lo, hi = model.tokenizer.q01.numpy(), model.tokenizer.q99.numpy()
    prev = (lo + (hi - lo) * np.random.default_rng(0).uniform(0.1, 0.9, (3, 2, 4))).astype(
        np.float32)
    plain, _ = model.predict_chunk(obs)
    actions, stats = model.predict_chunk(obs, prefix_actions=prev, frozen_steps=2)
    np.testing.assert_allclose(actions[:, :2], prev[:, :2], atol=1e-5)
    assert stats["decoder_frozen_conditioned"] == 2 and stats["nfe"] == 1
    assert not np.allclose(actions[:, 2:], plain[:, 2:])  # the pass saw the committed steps
    zero, _ = model.predict_chunk(obs, prefix_actions=prev, frozen_steps=0)
    np.testing.assert_array_equal(zero, plain)


def test_trained_head_continues_the_committed_step(make_model, synthetic):
    """With its first step committed, the trained head finds the chunk's level.

    Chunks are one random level per row, not in the observation: without the committed step
    the head can only guess the mean.
    """
    torch.manual_seed(0)
    model = make_model("oft", seed=2, rtc_train_max=3)
    n = 16
    obs_np, obs, pad = _obs_and_batch(synthetic, model, n)
    lo, hi = model.tokenizer.q01, model.tokenizer.q99
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        level = torch.rand(n, 1, 4, generator=g)
        actions = (lo + (hi - lo) * (0.1 + 0.8 * level)).expand(n, 4, 4).contiguous()
        loss, _ = model.compute_loss(obs, actions, pad, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    level = torch.rand(n, 1, 4, generator=g)
    target = (lo + (hi - lo) * (0.1 + 0.8 * level)).expand(n, 4, 4).numpy()
    with_prefix, stats = model.predict_chunk(obs_np, prefix_actions=target[:, :1],
                                             frozen_steps=1)
    without, _ = model.predict_chunk(obs_np)
    err_with = np.abs(with_prefix[:, 1:] - target[:, 1:]).mean()
    err_without = np.abs(without[:, 1:] - target[:, 1:]).mean()
    assert stats["decoder_frozen_conditioned"] == 1
    np.testing.assert_allclose(with_prefix[:, 0], target[:, 0], atol=1e-5)
    assert err_with < 0.35 * err_without, (err_with, err_without)
