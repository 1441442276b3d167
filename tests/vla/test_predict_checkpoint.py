"""Decoding through the heads, predict_chunk, and checkpoint save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from decoding import EarlyExit, autoregressive, jacobi
from vla.checkpoint import CheckpointError, from_pretrained, save_pretrained
from vla.data import load_chunks
from vla.heads import HEADS


def _obs(synthetic, model, n=3):
    data = load_chunks(synthetic, ["image"], model.config.image_size, 4, 4)
    return data.obs_dict(range(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_jacobi_equals_greedy_ar_float64(seed, make_model, synthetic):
    model = make_model("ar", seed=seed).double().eval()
    # Sharpen the random head so argmaxes are decided by the model, not by noise.
    with torch.no_grad():
        model.head.lm_head.weight.mul_(30)
    obs = model.prepare(_obs(synthetic, model))
    cache = model.encode_prefix(obs)
    n = model.config.n_action_tokens
    before = cache.get_seq_length()
    lm, bos = model.head.causal_lm(model), model.head.bos_ids(3, model.device)
    ar = autoregressive(lm, bos, n, cache=cache)
    for block in (None, 5):
        jac = jacobi(lm, bos, n, cache=cache, block_size=block)
        assert torch.equal(jac.tokens, ar.tokens)
        assert jac.nfe <= ar.nfe == n
    assert cache.get_seq_length() == before, "decoders must leave the prefix cache unchanged"


@pytest.mark.parametrize("head", HEADS)
def test_predict_chunk_every_decoder(head, make_model, synthetic):
    model = make_model(head).eval()
    obs = _obs(synthetic, model)
    for decoder in model.head.decoders:
        actions, stats = model.predict_chunk(obs, decoder=decoder)
        assert actions.shape == (3, 4, 4) and actions.dtype == np.float32
        assert np.isfinite(actions).all()
        assert stats["nfe"] >= 1 and stats["prefix_ms"] >= 0 and stats["total_ms"] > 0
        lo, hi = model.tokenizer.q01.numpy(), model.tokenizer.q99.numpy()
        assert (actions >= lo - 1e-5).all() and (actions <= hi + 1e-5).all()
    expected = {"ar": 16, "oft": 1, "flow": 10}
    if head in expected:
        assert model.predict_chunk(obs)[1]["nfe"] == expected[head]
    if head == "diffusion":
        assert model.predict_chunk(obs, steps=4)[1]["nfe"] <= 4
    if head == "ar":
        _, st = model.predict_chunk(obs, decoder="jacobi", early_exit=EarlyExit(max_iters=2))
        assert st["nfe"] <= 2
    with pytest.raises(ValueError, match="does not apply"):
        model.predict_chunk(obs, decoder="nope")


@pytest.mark.parametrize("head", HEADS)
def test_save_load_gives_identical_outputs(head, make_model, synthetic, tmp_path):
    model = make_model(head, param_dtype="float32").eval()
    obs = _obs(synthetic, model)
    save_pretrained(model, tmp_path / "ckpt")
    loaded = from_pretrained(tmp_path / "ckpt", allow_encoder=False)
    assert loaded.config == model.config
    kw = {"generator": torch.Generator().manual_seed(0)} if head == "flow" else {}
    a, _ = model.predict_chunk(obs, **kw)
    kw = {"generator": torch.Generator().manual_seed(0)} if head == "flow" else {}
    b, _ = loaded.predict_chunk(obs, **kw)
    np.testing.assert_array_equal(a, b)
    for name, t in model.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[name]), name


def test_fp16_checkpoint_keeps_stats_exact(make_model, synthetic, tmp_path):
    model = make_model("oft").eval()
    save_pretrained(model, tmp_path / "c")
    loaded = from_pretrained(tmp_path / "c", allow_encoder=False)
    assert torch.equal(loaded.tokenizer.q01, model.tokenizer.q01)
    obs = _obs(synthetic, model)
    a, b = model.predict_chunk(obs)[0], loaded.predict_chunk(obs)[0]
    assert np.abs(a - b).max() < 1e-2


def test_corrupt_or_mismatched_checkpoint_raises_clear_error(make_model, tmp_path):
    model = make_model("ar")
    path = save_pretrained(model, tmp_path / "ckpt")
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        from_pretrained(path)
    path = save_pretrained(model, tmp_path / "ckpt")  # atomic overwrite of the broken folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["head"] = "oft"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        from_pretrained(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON"):
        from_pretrained(path)
    with pytest.raises(CheckpointError, match="config.json is missing"):
        from_pretrained(tmp_path / "nowhere")
    assert not list(tmp_path.glob(".ckpt.tmp-*")), "no temporary folder left behind"


def test_uncached_instruction_without_encoder_is_a_clear_error(make_model, synthetic):
    from vla.encoders import UncachedInstructionError

    model = make_model("oft")
    obs = _obs(synthetic, model, n=1)
    obs["instruction"] = ["an instruction never cached"]
    with pytest.raises(UncachedInstructionError, match="no cached embedding"):
        model.predict_chunk(obs)


def test_predict_chunk_runs_with_its_cpu_threads_and_restores_the_callers(make_model,
                                                                           synthetic):
    model = make_model("oft").eval()
    obs = _obs(synthetic, model)
    seen = []
    real = model._predict_chunk

    def spy(*args):
        seen.append(torch.get_num_threads())
        return real(*args)

    model._predict_chunk = spy
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        model.predict_chunk(obs)
        model.cpu_threads = 2
        model.predict_chunk(obs)
        model.cpu_threads = None
        model.predict_chunk(obs)
        assert seen == [1, 2, 3] and torch.get_num_threads() == 3
        model.cpu_threads = 0
        with pytest.raises(ValueError, match="threads"):
            model.predict_chunk(obs)
    finally:
        torch.set_num_threads(before)
