"""The policies layer on the real MuJoCo tabletop (the fake env covers the corner cases)."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from policies.base import ExpertPolicy, Policy, RandomPolicy
from policies.rollout import control_dt, rollout

PICKPLACE = "robodecode/TabletopPickPlace-v0"


@pytest.fixture(scope="module")
def env():
    env = gym.make(PICKPLACE)
    yield env
    env.close()


def test_expert_rollout_succeeds(env):
    for seed in (0, 1):
        record = rollout(env, ExpertPolicy(env), seed=seed)
        assert record.success, record.failure
        assert record.steps < env.spec.max_episode_steps and record.k == 1


def test_random_policy_fails(env):
    record = rollout(env, RandomPolicy(env.action_space, horizon=4), seed=0)
    assert not record.success and record.steps == env.spec.max_episode_steps
    assert record.failure.startswith("time limit")


class ChunkedExpert(Policy):
    """The expert's current action repeated over an 8-step chunk (a crude open-loop chunker)."""

    def __init__(self, env):
        self.expert = ExpertPolicy(env)

    def infer(self, obs):
        return {"actions": np.repeat(self.expert.infer(obs)["actions"], 8, axis=0)}

    def reset(self, *, seed=None):
        self.expert.reset(seed=seed)


def test_latency_aware_stepping_on_tabletop(env):
    dt = control_dt(env)
    record = rollout(env, ChunkedExpert(env), seed=0, k=2, latency=1000 * dt * 2.5)
    delays = [c.delay_steps for c in record.chunks]
    assert delays[0] == 0 and set(delays[1:]) == {3}


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_expert_reaches_95_percent(tmp_path, split):
    from experiments.evaluate import EvalConfig, evaluate

    summary = evaluate(EvalConfig(policy="expert", env_id=PICKPLACE, episodes=50, split=split,
                                  workers=2), tmp_path, progress=False)
    assert summary["pc_success"] >= 95, summary["failures"]
