"""A tiny image env with the robodecode observation contract and a scripted expert, for tests.

Importing this module registers ``robodecode_test/DatasetFakeReach-v0`` and its expert; use the id
``dataset_fake_env:robodecode_test/DatasetFakeReach-v0`` so that spawned workers import it too.
A dot has to reach a coloured target; ``speed`` bounds the step, so small speeds make some seeds
fail (the target is out of reach before the time limit), and ``step_delay`` slows steps down so
that a test can kill a run midway.
"""

from __future__ import annotations

import string
import time

import gymnasium as gym
import numpy as np

from envs.experts import register_expert

ENV_ID = "robodecode_test/DatasetFakeReach-v0"
QUALIFIED_ID = f"dataset_fake_env:{ENV_ID}"
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class FakeReachEnv(gym.Env):
    """Move a white dot (2-D position control) onto the target named by the instruction."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_dt = 0.1

    def __init__(self, render_mode=None, size: int = 16, speed: float = 0.1,
                 step_delay: float = 0.0):
        self.render_mode = render_mode
        self.size, self.speed, self.step_delay = size, speed, step_delay
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            "instruction": gym.spaces.Text(64, charset=string.ascii_lowercase + " "),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.5, 0.5, 2)
        self.targets = {c: self.np_random.uniform(-0.5, 0.5, 2) for c in COLOURS}
        self.colour = str(self.np_random.choice(list(COLOURS)))
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite with shape (2,), got {action.shape}")
        if self.step_delay:
            time.sleep(self.step_delay)
        # Slightly noisy dynamics drawn from the seeded generator: replay must reseed to match.
        self.pos = self.pos + self.speed * np.clip(action, -1, 1) \
            + self.np_random.normal(0, 0.002, 2)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.targets[self.colour]) < 0.05)
        return self._obs(), float(success), success, False, {"is_success": success}

    def _obs(self):
        img = np.zeros((self.size, self.size, 3), np.uint8)
        for colour, xy in self.targets.items():
            img[self._px(xy)] = COLOURS[colour]
        img[self._px(self.pos)] = 255
        state = np.array([*self.pos, self.t / 100], np.float32)
        return {"image": img, "state": state, "instruction": f"reach the {self.colour} target"}

    def _px(self, xy):
        i, j = np.clip(((np.asarray(xy) + 0.5) * self.size).astype(int), 0, self.size - 1)
        return int(i), int(j)

    def render(self):
        return self._obs()["image"]


class FakeReachExpert:
    """Proportional controller with privileged target positions, plus optional Gaussian noise."""

    def __init__(self, env, noise: float = 0.0, seed=None):
        self.env, self.noise = env, noise
        self.rng = np.random.default_rng(seed)

    def reset(self):
        pass

    def act(self, obs):
        env = self.env
        delta = (env.targets[env.colour] - env.pos) / env.speed
        return np.clip(delta + self.noise * self.rng.normal(size=2), -1, 1).astype(np.float32)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=FakeReachEnv, max_episode_steps=30)
register_expert(FakeReachEnv, FakeReachExpert)
