"""VLAPolicy on tiny random-weight checkpoints of every head (no training, no MiniLM)."""

import fake_reach_env
import gymnasium as gym
import numpy as np
import pytest

from policies.rollout import rollout

torch = pytest.importorskip("torch")
vla_checkpoint = pytest.importorskip("vla.checkpoint")

SPECS = {"ar": 16, "jacobi": None, "jacobi+ee": None, "cjacobi+ee": None, "diffusion@3": 3,
         "flow@2": 2, "flow@2:heun": 4, "oft": 1}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine two threads spin and run ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint_set(tmp_path_factory):
    from vla.config import preset
    from vla.encoders import InstructionCache
    from vla.model import VLAModel

    root = tmp_path_factory.mktemp("ckpt")
    stats = {"action": {"q01": -np.ones(4), "q99": np.ones(4)},
             "state": {"mean": np.full(4, 0.5), "std": np.full(4, 0.3)}}
    for folder, head in (("ar", "ar"), ("cjacobi", "ar"), ("diffusion", "diffusion"),
                         ("flow", "flow"), ("oft", "oft")):
        torch.manual_seed(0)
        cache = InstructionCache(allow_encoder=False)
        for text in ("reach the goal", "go to the goal"):
            cache.put(text, torch.nn.functional.normalize(torch.randn(384), dim=0))
        model = VLAModel(preset("tiny", head=head, state_dim=4, action_dim=4, horizon=4),
                         instructions=cache)
        model.set_stats(stats, instructions=["reach the goal", "go to the goal"])
        vla_checkpoint.save_pretrained(model, root / folder)
    return root


@pytest.fixture(scope="module")
def env():
    env = gym.make(fake_reach_env.ENV_ID)
    yield env
    env.close()


@pytest.mark.parametrize(("spec", "nfe"), list(SPECS.items()))
def test_every_decoder_infers_a_chunk(checkpoint_set, env, spec, nfe):
    from policies.vla_policy import VLAPolicy

    policy = VLAPolicy(checkpoint_set, spec)
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    out = policy.infer(obs)
    assert out["actions"].shape == (4, 4) and np.all(np.isfinite(out["actions"]))
    assert out["decoder"] == spec
    if nfe is not None:
        assert out["nfe"] == nfe
    else:
        assert 1 <= out["nfe"] <= 16
    policy.reset(seed=0)
    np.testing.assert_array_equal(policy.infer(obs)["actions"], out["actions"])


def test_bad_observations_are_refused_not_decoded(checkpoint_set, env):
    import policies

    policy = policies.VLAPolicy(checkpoint_set, "oft")  # the lazy package-level export
    obs, _ = env.reset(seed=0)
    nan_state = {**obs, "state": np.where(np.arange(obs["state"].size) == 0, np.nan,
                                          obs["state"])}
    with pytest.raises(ValueError, match="non-finite"):
        policy.infer(nan_state)
    with pytest.raises(ValueError, match="uint8"):
        policy.infer({**obs, "image": obs["image"].astype(np.float32) / 255})
    assert np.all(np.isfinite(policy.infer(obs)["actions"]))


def test_rollout_with_a_vla_policy(checkpoint_set, env):
    from policies.vla_policy import VLAPolicy

    record = rollout(env, VLAPolicy(checkpoint_set / "flow", "flow@2"), seed=3, k=2,
                     max_steps=6)
    assert record.steps == 6 and len(record.chunks) == 3
    assert record.nfe_per_chunk == 2 and record.k == 2


def test_wrong_head_and_missing_folder(checkpoint_set, tmp_path):
    from policies.vla_policy import VLAPolicy, resolve_checkpoint

    with pytest.raises(ValueError, match="needs the flow head"):
        VLAPolicy(checkpoint_set / "ar", "flow@4")
    with pytest.raises(ValueError, match="model folders found: none"):
        resolve_checkpoint(tmp_path, "ar")
    with pytest.raises(ValueError, match="not a folder"):
        resolve_checkpoint(tmp_path / "missing", "ar")
    assert resolve_checkpoint(checkpoint_set, "cjacobi+ee") == checkpoint_set / "cjacobi"


def test_eval_of_a_checkpoint_set(checkpoint_set, tmp_path):
    from experiments.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(policy=str(checkpoint_set), decoder="cjacobi+ee",
                     env_id=f"fake_reach_env:{fake_reach_env.ENV_ID}", episodes=2, k=2,
                     max_steps=8, latency="measured")
    summary = evaluate(cfg, tmp_path, progress=False)
    assert summary["episodes"] == 2 and summary["n_chunks"] >= 4
    assert 1 <= summary["nfe_per_chunk"] <= 16 and summary["k"] == 2
    assert summary["hz"] == pytest.approx(2000 / summary["ms_per_chunk"])
    assert summary["decoder"] == "cjacobi+ee" and summary["latency"] == "measured"
    assert summary["prefix_nfe_per_chunk"] == 1
    assert 0 < summary["decode_ms_per_chunk"] < summary["ms_per_chunk"]


def test_cli_rejects_a_checkpoint_of_the_wrong_head(checkpoint_set, tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import build_app

    result = CliRunner().invoke(build_app(), [
        "eval", "--policy", str(checkpoint_set / "oft"), "--decoder", "diffusion@4", "--env",
        f"fake_reach_env:{fake_reach_env.ENV_ID}", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "needs the diffusion head" in result.output and result.output.count("\n") == 1
