"""Per-token language features and FiLM of every CNN stage (the grounding switches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.vla.conftest import INSTRUCTIONS
from vla.checkpoint import CheckpointError, from_pretrained, save_pretrained
from vla.config import VLAConfig, preset
from vla.encoders import InstructionCache
from vla.model import VLAModel

N_TOK = 6


def token_cache() -> InstructionCache:
    """Fake per-token states: a different number of real word pieces per instruction."""
    cache = InstructionCache(allow_encoder=False, n_tokens=N_TOK)
    g = torch.Generator().manual_seed(0)
    for k, text in enumerate(INSTRUCTIONS):
        h = torch.zeros(N_TOK, 384)
        h[:3 + k] = torch.randn(3 + k, 384, generator=g)
        cache.put(text, h)
    return cache


def token_model(synthetic, seed: int = 0, **overrides) -> VLAModel:
    torch.manual_seed(seed)
    cfg = preset("tiny", head="oft", lang_features="tokens", lang_tokens=N_TOK,
                 param_dtype="float32", **overrides)
    model = VLAModel(cfg, instructions=token_cache())
    model.set_stats(synthetic.stats, instructions=INSTRUCTIONS)
    return model


def _obs(synthetic, idx=(0, 1, 2, 3)):
    items = [synthetic[i] for i in idx]
    return {"image": torch.stack([it["image"] for it in items]),
            "state": torch.stack([it["state"] for it in items]),
            "instruction": [it["instruction"] for it in items]}


def test_config_validates_language_switches_and_old_configs_default_off():
    with pytest.raises(ValueError, match="lang_features"):
        VLAConfig(lang_features="words")
    with pytest.raises(ValueError, match="lang_film_all"):
        VLAConfig(lang_film=False, lang_film_all=True)
    old = VLAConfig.from_dict({k: v for k, v in VLAConfig().to_dict().items()
                               if k not in ("lang_features", "lang_film_all")})
    assert old.lang_features == "pooled" and not old.lang_film_all
    assert VLAConfig(lang_features="tokens", lang_tokens=16).lang_cache_tokens == 16
    assert VLAConfig().lang_cache_tokens is None


def test_token_cache_checks_shapes_and_round_trips(tmp_path):
    cache = token_cache()
    with pytest.raises(ValueError, match="shape"):
        cache.put("x", torch.zeros(384))
    cache.save(tmp_path / "tok.safetensors")
    again = InstructionCache(tmp_path / "tok.safetensors", allow_encoder=False, n_tokens=N_TOK)
    assert torch.equal(again.embed(list(INSTRUCTIONS)), cache.embed(list(INSTRUCTIONS)))
    with pytest.raises(ValueError, match="per-token"):
        InstructionCache(tmp_path / "tok.safetensors", allow_encoder=False)
    with pytest.raises(ValueError, match="n_tokens"):
        VLAModel(preset("tiny", lang_features="tokens", lang_tokens=N_TOK),
                 instructions=InstructionCache(allow_encoder=False))


def test_padding_positions_become_the_pad_token_and_stats_skip_them(synthetic):
    model = token_model(synthetic)
    emb = model.instructions.embed(list(INSTRUCTIONS))
    real = emb[emb.abs().sum(-1) > 0]
    torch.testing.assert_close(model.lang_proj.mean, real.mean(0))
    with torch.no_grad():
        model.lang_proj.pad.fill_(3.0)
        tokens = model.lang_proj(emb)
    assert tokens.shape == (2, N_TOK, model.config.d_model)
    assert bool((tokens[0, 3:] == 3.0).all()) and not bool((tokens[0, :3] == 3.0).any())
    assert bool((tokens[1, 4:] == 3.0).all())


def test_film_of_every_stage_starts_as_identity(synthetic):
    plain = token_model(synthetic, seed=0)
    film_all = token_model(synthetic, seed=0, lang_film_all=True)
    film_all.load_state_dict(plain.state_dict(), strict=False)
    assert len(film_all.image_enc.stage_films) == len(film_all.config.cnn_channels) - 1
    obs = plain.prepare(_obs(synthetic))
    torch.testing.assert_close(film_all.prefix_tokens(obs), plain.prefix_tokens(obs))


def test_token_language_model_trains_and_reads_its_instruction(synthetic):
    torch.set_num_threads(1)
    model = token_model(synthetic, lang_film_all=True)
    batch = _obs(synthetic, range(8))
    batch["image"] = torch.zeros_like(batch["image"])  # only the words tell the task apart
    obs = model.prepare(batch)
    actions = torch.stack([synthetic[i]["actions"] for i in range(8)])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, _ = model.compute_loss(obs, actions)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < first / 3
    model.eval()
    a, _ = model.predict_chunk(batch)
    batch["instruction"] = [INSTRUCTIONS[1 - INSTRUCTIONS.index(t)] for t in batch["instruction"]]
    b, _ = model.predict_chunk(batch)
    # The synthetic z action is +-0.5 by task; with blank images only the words carry it.
    assert float(np.abs(a[..., 2] - b[..., 2]).mean()) > 0.1


def test_token_checkpoint_round_trip_carries_its_token_cache(synthetic, tmp_path):
    model = token_model(synthetic, lang_film_all=True).eval()
    save_pretrained(model, tmp_path / "ckpt")
    loaded = from_pretrained(tmp_path / "ckpt", allow_encoder=False)
    assert loaded.config == model.config and loaded.instructions.n_tokens == N_TOK
    a, _ = model.predict_chunk(_obs(synthetic))
    b, _ = loaded.predict_chunk(_obs(synthetic))
    np.testing.assert_array_equal(a, b)
    (tmp_path / "ckpt" / "config.json").write_text(
        (tmp_path / "ckpt" / "config.json").read_text().replace('"tokens"', '"pooled"'))
    with pytest.raises(CheckpointError):
        from_pretrained(tmp_path / "ckpt", allow_encoder=False)


def test_target_heading_runs_closed_loop_and_validates(synthetic):
    import gymnasium as gym

    import envs  # noqa: F401  (registers the tabletop envs)
    from experiments.grounding_probe import target_heading

    env = gym.make("robodecode/TabletopPickPlace-v0", image_size=32)
    model = token_model(synthetic).eval()
    model.instructions = InstructionCache(allow_encoder=False, n_tokens=N_TOK)
    obs, _ = env.reset(seed=3)
    model.instructions.put(obs["instruction"], token_cache().embed([INSTRUCTIONS[0]])[0])
    with pytest.raises(ValueError, match="seeds"):
        target_heading(model, env, [])
    out = target_heading(model, env, [3], steps=2)
    env.close()
    row = out["rows"][0]
    assert out["nearest_is_target"] in (0.0, 1.0) and row["d_target"] > 0
    assert row["target"] == env.unwrapped.task_spec.block and row["d_others_mean"] > 0
