"""MetaWorld's own scripted policies as ``envs.make_expert`` experts for the MetaWorld envs.

Usage: ``expert = envs.make_expert(gymnasium.make("robodecode/MetaWorld-PickPlace-v0"))``
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class MetaWorldExpert:
    """MetaWorld's scripted policy for the env's current task, reading the privileged observation.

    Args:
        env: The unwrapped env (``MetaWorldTaskEnv`` or the multi-task env) whose ``task`` picks
            the policy and whose ``privileged_obs`` the policy reads.
        noise: Standard deviation of Gaussian noise added to every action (then clipped).
        seed: Seed of the noise generator.
    """

    def __init__(self, env: Any, noise: float = 0.0, seed: int | None = None):
        if not noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self._policies: dict[str, Any] = {}
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to forget: MetaWorld's policies are stateless."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the policy's action for the env's current state (``obs`` is not needed)."""
        with warnings.catch_warnings():
            # metaworld.policies.move warns whenever its gain saturates; the env clips anyway.
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self._policy().get_action(self.env.privileged_obs), np.float64)
        if self.noise > 0.0:
            action = action + self._rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _policy(self) -> Any:
        task = self.env.task
        if task not in self._policies:
            from metaworld.policies import ENV_POLICY_MAP

            self._policies[task] = ENV_POLICY_MAP[task]()
        return self._policies[task]
