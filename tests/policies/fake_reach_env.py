"""A tiny MuJoCo-free env that follows robodecode's observation contract, with an expert.

A point moves in the unit square toward a goal; actions are (dx, dy, dz, jaw) in [-1, 1] and
only dx, dy matter. Importing this module registers ``robodecode_test/FakeReach-v0`` and its
expert, so ``gymnasium.make("fake_reach_env:robodecode_test/FakeReach-v0")`` works in spawned
workers.
"""

from __future__ import annotations

import os
import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.experts import register_expert

ENV_ID = "robodecode_test/FakeReach-v0"
MAX_STEPS = 40


class FakeReachEnv(gym.Env):
    """Reach a goal in the unit square; success within 0.05 of the goal, terminates on success."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_dt = 0.1
    speed = 0.1

    def __init__(self, split: str = "train", render_mode: str | None = None,
                 image_size: int = 16) -> None:
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        self.split, self.render_mode, self.image_size = split, render_mode, image_size
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "state": spaces.Box(-2.0, 2.0, (4,), np.float32),
            "instruction": spaces.Text(64, charset="abcdefghijklmnopqrstuvwxyz "),
        })

    def _obs(self) -> dict:
        return {"image": self.render(), "state": np.concatenate([self.pos, self.goal]),
                "instruction": "reach the goal" if self.split == "train" else "go to the goal"}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(0.1, 0.9, 2).astype(np.float32)
        self.goal = self.np_random.uniform(0.1, 0.9, 2).astype(np.float32)
        return self._obs(), {"is_success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        self.pos = np.clip(self.pos + self.speed * action[:2], 0.0, 1.0).astype(np.float32)
        dist = float(np.linalg.norm(self.pos - self.goal))
        success = dist < 0.05
        return self._obs(), -dist, success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        img = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        for point, channel in ((self.pos, 0), (self.goal, 2)):
            i, j = (np.clip(point, 0, 0.999) * self.image_size).astype(int)
            img[j, i, channel] = 255
        return img


class FakeReachExpert:
    """Move straight at the goal."""

    def __init__(self, env: FakeReachEnv, noise: float = 0.0, seed: int | None = None) -> None:
        self.env, self.noise = env, noise
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict) -> np.ndarray:
        delta = (self.env.goal - self.env.pos) / self.env.speed
        action = np.array([*np.clip(delta, -1, 1), 0.0, 1.0], np.float32)
        return action + self.noise * self.rng.standard_normal(4).astype(np.float32)

    def reset(self) -> None:
        """Nothing to forget."""


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=FakeReachEnv, max_episode_steps=MAX_STEPS)
register_expert(FakeReachEnv, FakeReachExpert)


class _NaNPolicy:
    def infer(self, obs: dict) -> dict:
        return {"actions": np.full((2, 4), np.nan, np.float32)}

    def reset(self, *, seed: int | None = None) -> None:
        """Nothing to forget."""


def nan_policy(env: gym.Env) -> _NaNPolicy:
    """Policy factory (``fake_reach_env:nan_policy``) whose chunks are all NaN."""
    return _NaNPolicy()


class _CrashingExpert:
    def __init__(self, env: gym.Env) -> None:
        self.expert = FakeReachExpert(env.unwrapped)

    def infer(self, obs: dict) -> dict:
        return {"actions": self.expert.act(obs)[None]}

    def reset(self, *, seed: int | None = None) -> None:
        if str(seed) == os.environ.get("FAKE_REACH_CRASH_SEED"):
            raise RuntimeError(f"simulated crash at seed {seed}")


def crashing_expert(env: gym.Env) -> _CrashingExpert:
    """The expert, but ``reset`` raises at the seed in ``$FAKE_REACH_CRASH_SEED`` (a crash)."""
    return _CrashingExpert(env)


class _DyingExpert(_CrashingExpert):
    def reset(self, *, seed: int | None = None) -> None:
        if str(seed) == os.environ.get("FAKE_REACH_CRASH_SEED"):
            os._exit(3)  # the worker process dies, as on a segfault


def dying_expert(env: gym.Env) -> _DyingExpert:
    """The expert, but its worker process exits at the seed in ``$FAKE_REACH_CRASH_SEED``."""
    return _DyingExpert(env)


class _SlowFirstCall(_CrashingExpert):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.calls = 0

    def infer(self, obs: dict) -> dict:
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.3)  # lazy initialisation on the first call
        return super().infer(obs)


def slow_first_call(env: gym.Env) -> _SlowFirstCall:
    """The expert, with a 300 ms first call (what the per-worker warm-up must absorb)."""
    return _SlowFirstCall(env)
