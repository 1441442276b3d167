"""Keypoint tokens, state dropout and the auxiliary grasp/release loss (the grounding recipe)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vla.config import VLAConfig, preset
from vla.data import ChunkTensors, grasp_release_targets, gripper_close_sign, load_chunks

GROUNDED = {"image_keypoints": 4, "lang_film_all": True, "keypoint_stage": 0,
            "state_dropout": 0.5, "aux_target_weight": 1.0}


def _data(synthetic, model) -> ChunkTensors:
    return load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)


def _batch(synthetic, model, n: int):
    """(Observation, actions, is_pad) of the first ``n`` synthetic items."""
    data = _data(synthetic, model)
    return data.batch(torch.arange(n), model.instructions.embed(data.instructions),
                      model.config.image_size)


def test_config_rejects_bad_switches():
    with pytest.raises(ValueError, match="keypoint_stage"):
        preset("tiny", image_keypoints=4, keypoint_stage=5)
    with pytest.raises(ValueError, match="state_dropout"):
        preset("tiny", state_dropout=1.5)
    with pytest.raises(ValueError, match="aux_target_weight"):
        preset("tiny", aux_target_weight=-1.0)
    cfg = preset("tiny", image_keypoints=4)
    assert cfg.n_image_tokens == cfg.image_grid ** 2 + 4
    old = {k: v for k, v in preset("tiny").to_dict().items()
           if k not in ("image_keypoints", "state_dropout", "aux_target_weight")}
    assert VLAConfig.from_dict(old).image_keypoints == 0  # older checkpoints load unchanged


def test_keypoints_follow_the_bright_spot(make_model):
    model = make_model("oft", image_keypoints=1, keypoint_stage=0)
    enc = model.image_enc
    with torch.no_grad():  # one heatmap = the red channel of the first stage, sharpened
        enc.kp_conv.weight.zero_()
        enc.kp_conv.bias.zero_()
    f = torch.zeros(2, enc.kp_conv.in_channels, 16, 16)
    f[0, 0, 3, 12] = 50.0   # row 3, column 12: right, top
    f[1, 0, 12, 2] = 50.0   # bottom, left
    enc.kp_conv.weight.data[0, 0] = 1.0
    xy = enc.keypoints(f)
    assert xy[0, 0, 0] > 0.4 and xy[0, 0, 1] < -0.4
    assert xy[1, 0, 0] < -0.4 and xy[1, 0, 1] > 0.4


def test_state_dropout_acts_only_in_training(make_model, synthetic):
    model = make_model("oft", state_dropout=1.0)
    obs, _, _ = _batch(synthetic, model, 4)
    model.train()
    prefix = model.prefix_tokens(obs)
    assert torch.equal(prefix[:, -1], model.state_null[0].expand(4, -1))
    model.eval()
    state_tok = model.prefix_tokens(obs)[:, -1]
    assert not torch.allclose(state_tok, prefix[:, -1])
    obs.state = obs.state + 1.0  # at inference the state is read
    assert not torch.allclose(model.prefix_tokens(obs)[:, -1], state_tok)


def test_grasp_release_targets_from_the_gripper_action():
    n, h = 6, 2
    actions = torch.ones(n, h, 4)
    actions[2:4, 0, 3] = -1.0          # closes at items 2..3, re-opens at item 4
    state = torch.arange(n * 7, dtype=torch.float32).view(n, 7)
    data = ChunkTensors(images={"image": torch.zeros(n, 8, 8, 3, dtype=torch.uint8)},
                        state=state, actions=actions, is_pad=torch.zeros(n, h, dtype=torch.bool),
                        instr_index=torch.zeros(n, dtype=torch.long), instructions=["a"],
                        episode=torch.tensor([0, 0, 0, 0, 0, 1]))
    aux = grasp_release_targets(data)
    assert torch.equal(aux[0, 0:3], state[2, 0:3]) and torch.equal(aux[0, 3:6], state[4, 0:3])
    assert aux[:5, 6].eq(1).all() and aux[5, 6] == 0  # episode 1 never grasps


def test_grasp_release_targets_read_the_gripper_convention_from_the_data():
    # robosuite / LIBERO close with +1 and start open at -1: the same episodes with the gripper
    # dimension negated give the same targets, inferred or stated
    n, h = 6, 2
    actions = torch.ones(n, h, 4)
    actions[2:4, 0, 3] = -1.0
    state = torch.arange(n * 7, dtype=torch.float32).view(n, 7)
    kw = dict(images={"image": torch.zeros(n, 8, 8, 3, dtype=torch.uint8)}, state=state,
              is_pad=torch.zeros(n, h, dtype=torch.bool),
              instr_index=torch.zeros(n, dtype=torch.long),
              instructions=["a"], episode=torch.tensor([0, 0, 0, 0, 0, 1]))
    tabletop = grasp_release_targets(ChunkTensors(actions=actions, **kw))
    flipped = actions.clone()
    flipped[..., 3] *= -1
    robosuite = ChunkTensors(actions=flipped, **kw)
    assert gripper_close_sign(robosuite) == 1
    assert torch.equal(grasp_release_targets(robosuite), tabletop)
    assert torch.equal(grasp_release_targets(robosuite, close_sign=1), tabletop)
    # stating the wrong convention grasps at the first (open) action instead
    assert not torch.equal(grasp_release_targets(robosuite, close_sign=-1), tabletop)


def test_grounded_model_trains_with_the_aux_loss(make_model, synthetic):
    torch.set_num_threads(1)
    model = make_model("oft", **GROUNDED)
    data = _data(synthetic, model)
    data = dataclasses.replace(data, aux=torch.cat([torch.randn(len(data), 6),
                                                    torch.ones(len(data), 1)], dim=1))
    lang = model.instructions.embed(data.instructions)
    obs, actions, pad = data.batch(torch.arange(8), lang, model.config.image_size)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(60):
        loss, metrics = model.compute_loss(obs, actions, pad)
        first = first if first is not None else metrics["aux"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["aux"] < first / 3, (first, metrics["aux"])
    obs.aux = None  # without targets (inference data) the head loss alone is computed
    assert "aux" not in model.compute_loss(obs, actions, pad)[1]


def test_ar_input_noise_only_in_training(make_model, synthetic):
    model = make_model("ar", ar_input_noise=0.5)
    obs, actions, pad = _batch(synthetic, model, 8)
    model.train()
    losses = {float(model.compute_loss(obs, actions, pad,
                                       generator=torch.Generator().manual_seed(s))[0].detach())
              for s in range(3)}
    assert len(losses) == 3  # different corrupted inputs per draw
    model.eval()
    clean = make_model("ar").eval()
    clean.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.compute_loss(obs, actions, pad)[0],
                               clean.compute_loss(obs, actions, pad)[0])
