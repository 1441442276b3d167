"""A policy factory whose every call sleeps, so that a test can signal an eval mid-episode.

Use it as ``--policy slow_policy:slow_policy`` with this folder on ``PYTHONPATH`` (spawned
workers then import it too).
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

STEP_S = 0.05


class _SlowPolicy:
    def __init__(self, env: gym.Env) -> None:
        self.dim = env.action_space.shape[0]

    def infer(self, obs: dict) -> dict:
        time.sleep(STEP_S)
        return {"actions": np.zeros((1, self.dim), np.float32)}

    def reset(self, *, seed: int | None = None) -> None:
        """Nothing to forget."""


def slow_policy(env: gym.Env) -> _SlowPolicy:
    """Policy factory: zero actions (episodes run to the time limit), ``STEP_S`` per call."""
    return _SlowPolicy(env)
