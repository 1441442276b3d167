import re

import fake_reach_env as fake_env
import gymnasium as gym
import numpy as np
import pytest

from policies.base import ExpertPolicy, Policy, RandomPolicy
from policies.rollout import control_dt, rollout


@pytest.fixture
def env():
    env = gym.make(fake_env.ENV_ID)
    yield env
    env.close()


class SlowExpert(Policy):
    """The expert's action repeated over a 6-step chunk."""

    def __init__(self, env):
        self.expert = ExpertPolicy(env)

    def infer(self, obs):
        return {"actions": np.repeat(self.expert.infer(obs)["actions"], 6, axis=0), "nfe": 2}


class Broken(Policy):
    def __init__(self, actions, after=0):
        self.actions, self.after, self.calls = actions, after, 0

    def infer(self, obs):
        self.calls += 1
        if self.calls > self.after:
            return {"actions": self.actions}
        return {"actions": np.zeros((1, 4), np.float32)}


def test_expert_succeeds(env):
    for seed in range(3):
        record = rollout(env, ExpertPolicy(env), seed=seed)
        assert record.success and record.failure is None
        assert record.k == 1 and len(record.chunks) == record.steps
        assert record.steps < fake_env.MAX_STEPS and record.instruction == "reach the goal"
        assert record.sum_reward < 0 and record.max_reward <= 0


def test_rollout_is_reproducible(env):
    a = rollout(env, RandomPolicy(env.action_space, horizon=3), seed=5, max_steps=10)
    b = rollout(env, RandomPolicy(env.action_space, horizon=3), seed=5, max_steps=10)
    assert a.sum_reward == b.sum_reward and a.steps == b.steps == 10
    assert not a.success and "time limit (10 steps)" in a.failure
    assert a.k == 3 and len(a.chunks) == 4


def test_random_policy_is_the_floor(env):
    records = [rollout(env, RandomPolicy(env.action_space), seed=s) for s in range(3)]
    assert sum(r.success for r in records) < 3
    assert all(r.steps == fake_env.MAX_STEPS for r in records if not r.success)


@pytest.mark.parametrize(("actions", "reason"), [
    (np.full((2, 4), np.nan, np.float32), "non-finite"),
    (np.zeros((2, 7), np.float32), r"shape \(2, 7\), expected \(H, 4\)"),
])
def test_bad_policy_output_fails_the_episode_and_the_run_continues(env, actions, reason):
    record = rollout(env, Broken(actions, after=2), seed=0)
    assert not record.success and record.steps == 2
    assert record.failure.startswith("policy output at step 2")
    assert re.search(reason, record.failure)
    assert rollout(env, ExpertPolicy(env), seed=0).success


def test_video_frames(env):
    record = rollout(env, ExpertPolicy(env), seed=1, video=True)
    assert len(record.frames) == record.steps + 1
    assert record.frames[0].dtype == np.uint8 and record.frames[0].shape == (16, 16, 3)
    assert "frames" not in record.to_dict()


def test_latency_aware_rollout_of_a_slow_policy(env):
    fast = rollout(env, SlowExpert(env), seed=2, k=2)
    slow = rollout(env, SlowExpert(env), seed=2, k=2, latency=350.0)  # 4 steps at 10 Hz
    assert fast.to_dict()["chunk_delay_steps"] == [0] * len(fast.chunks)
    delays = slow.to_dict()["chunk_delay_steps"]
    assert delays[0] == 0 and set(delays[1:]) == {4}
    assert slow.latency == 350.0 and slow.nfe_per_chunk == 2
    # Decoding in real time, chunks are requested every 4 steps instead of every 2.
    steps = [c.step for c in slow.chunks]
    assert np.all(np.diff(steps)[1:] == 4) and np.diff(steps)[0] == 2


def test_control_dt(env):
    assert control_dt(env) == 0.1
    with pytest.raises(ValueError, match="control period"):
        control_dt(object())


def test_missing_step_cap_is_an_error():
    env = fake_env.FakeReachEnv()
    with pytest.raises(ValueError, match="max_steps"):
        rollout(env, ExpertPolicy(env), seed=0)
    assert rollout(env, ExpertPolicy(env), seed=0, max_steps=50).success
