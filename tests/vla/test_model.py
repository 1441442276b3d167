"""Model contract tests: tokenizer, shapes per head, overfitting, cache consistency, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vla.config import VLAConfig, preset
from vla.data import load_chunks
from vla.heads import HEADS
from vla.tokenizer import ActionTokenizer


@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=8, max_size=8))
def test_tokenizer_round_trip_within_half_a_bin(values):
    tok = ActionTokenizer(action_dim=4, n_bins=256)
    tok.set_stats([-2.0, -1.0, 0.0, -1.0], [2.0, 1.0, 1.0, 1.0])
    a = torch.tensor(values).reshape(2, 4)
    ids = tok.encode(a)
    assert ids.shape == (8,) and int(ids.min()) >= 0 and int(ids.max()) < 256
    z, z_back = tok.normalize(a), tok.normalize(tok.decode(ids))
    assert (z - z_back).abs().max() <= 1.0 / 256 + 1e-6  # half of a bin width 2/256


def test_tokenizer_rejects_bad_tokens_and_stats():
    tok = ActionTokenizer(action_dim=2, n_bins=16)
    with pytest.raises(ValueError, match="token ids"):
        tok.decode(torch.tensor([0, 16]))
    with pytest.raises(ValueError, match="q99"):
        tok.set_stats([1.0, 1.0], [0.0, 2.0])


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="head"):
        VLAConfig(head="gpt")
    with pytest.raises(ValueError, match="n_heads"):
        VLAConfig(d_model=130, n_heads=4)
    with pytest.raises(ValueError, match="unknown VLAConfig fields"):
        VLAConfig.from_dict({"d_modle": 3})
    assert VLAConfig.from_dict(preset("gpu").to_dict()) == preset("gpu")
    old = {k: v for k, v in preset("cpu").to_dict().items() if k not in ("lang_norm", "lang_film")}
    assert not VLAConfig.from_dict(old).lang_film  # pre-FiLM checkpoints load as they were


def test_language_standardization_uses_training_instructions(make_model):
    model = make_model("oft")
    emb = model.instructions.embed(list(model.instructions.instructions))
    z = (emb - model.lang_proj.mean) / model.lang_proj.std
    assert z.mean(0).abs().max() < 1e-4 and z.abs().max() > 0.5


def _batch(synthetic, model, n=8):
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    lang = model.instructions.embed(data.instructions)
    return data.batch(torch.arange(n), lang, model.config.image_size)


@pytest.mark.parametrize("head", HEADS)
def test_forward_backward_shapes(head, make_model, synthetic):
    model = make_model(head)
    obs, actions, pad = _batch(synthetic, model)
    loss, metrics = model.compute_loss(obs, actions, pad)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"
    if head in ("ar", "diffusion"):
        assert 0.0 <= metrics["token_acc"] <= 1.0


def test_param_counts_within_ten_percent():
    from vla.pipeline import head_param_table

    for size in ("cpu", "gpu"):
        counts = head_param_table(preset(size))
        assert max(counts.values()) <= 1.1 * min(counts.values()), (size, counts)


@pytest.mark.parametrize("head", HEADS)
def test_each_head_overfits_a_tiny_batch(head, make_model, synthetic):
    torch.set_num_threads(1)
    model = make_model(head, seed=1)
    obs, actions, pad = _batch(synthetic, model, n=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    losses = []
    for _ in range(150):
        loss, _ = model.compute_loss(obs, actions, pad, generator=g)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    final = sum(losses[-10:]) / 10  # noisy heads (diffusion, flow): average the tail
    factor = {"ar": 20, "diffusion": 5, "flow": 3, "oft": 10}[head]
    assert final < first / factor, (head, first, final)


def test_cached_prefix_path_equals_training_pass(make_model, synthetic):
    model = make_model("ar").double().eval()
    obs, actions, _ = _batch(synthetic, model, n=3)
    tokens = model.tokenizer.encode(actions)
    inputs = torch.cat([model.head.bos_ids(3, model.device), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        full = model.head.lm_head(model.backbone.run_full(
            model.prefix_tokens(obs), model.head.tok_embed(inputs), causal=True))
        cache = model.encode_prefix(obs)
        first = model.head.causal_lm(model)(input_ids=inputs[:, :5], cache=cache).logits
        second = model.head.causal_lm(model)(input_ids=inputs[:, 5:], cache=cache).logits
    assert cache.get_seq_length() == model.config.prefix_len + inputs.shape[1]
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=0, atol=1e-10)


def test_ar_head_without_use_cache_leaves_cache_unchanged(make_model, synthetic):
    model = make_model("ar").eval()
    obs, _, _ = _batch(synthetic, model, n=2)
    with torch.no_grad():
        cache = model.encode_prefix(obs)
        n = cache.get_seq_length()
        lm = model.head.causal_lm(model)
        out = lm(input_ids=model.head.bos_ids(2, model.device), cache=cache, use_cache=False)
    assert out.logits.shape == (2, 1, model.config.n_bins)
    assert cache.get_seq_length() == n and out.past_key_values is None


def test_wrong_head_decoder_raises(make_model):
    with pytest.raises(ValueError, match="does not apply to head 'flow'"):
        make_model("flow").predict_chunk({}, decoder="jacobi")



def test_a_state_too_far_from_the_training_data_is_refused_before_it_becomes_nan(make_model):
    """3.4e38 is a finite float32, but normalized it overflows: a clear error, not NaN actions."""
    from vla_fakes import INSTRUCTIONS

    model = make_model("oft").eval()
    size = model.config.image_size
    obs = {"image": np.zeros((size, size, 3), np.uint8), "instruction": INSTRUCTIONS[0]}
    mean, std = model.state_norm.mean.numpy(), model.state_norm.std.numpy()
    far = mean + 1e3 * std  # far out of distribution, yet served
    actions, _ = model.predict_chunk({**obs, "state": far})
    assert np.isfinite(actions).all()
    huge = far.copy()
    huge[2] = 3.4e38
    with pytest.raises(ValueError, match=r"state\[2\] = 3\.4e\+38 is .* standard deviations"):
        model.predict_chunk({**obs, "state": huge})
