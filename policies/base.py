"""The policy contract (openpi's ``BasePolicy``) and the two reference policies.

Usage: ``ExpertPolicy(env).infer(obs)["actions"]`` -> ndarray of shape (1, D)

A policy maps one observation to an action chunk: ``infer(obs) -> {"actions": (H, D), ...}``.
Extra keys are optional per-call statistics that the chunk broker records: ``nfe`` (decoder
forward passes for this chunk, after the observation prefix) and ``prefix_nfe``.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class PolicyOutputError(ValueError):
    """A policy returned something that is not a finite ``(H, D)`` action chunk."""


class Policy(abc.ABC):
    """The openpi policy contract: ``infer(obs) -> {"actions": ndarray (H, D), ...}``."""

    @abc.abstractmethod
    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Return an action chunk for one observation.

        Args:
            obs: One unbatched observation (``image``, ``state``, ``instruction``, ...).

        Returns:
            A dict with ``actions`` of shape (H, D) and optional statistics such as ``nfe``.
        """

    def reset(self, *, seed: int | None = None) -> None:  # noqa: B027 - optional hook
        """Forget per-episode state; called after ``env.reset``.

        Args:
            seed: The episode's seed, for policies with their own randomness (sampling noise);
                deterministic policies ignore it. ``reset()`` alone keeps openpi's signature.
        """


def check_actions(result: Any, action_dim: int | None = None) -> np.ndarray:
    """Validate a policy's output and return its actions as a float32 (H, D) array.

    Args:
        result: What ``Policy.infer`` returned.
        action_dim: The env's action dimension D, checked when given.

    Raises:
        PolicyOutputError: If the result has no ``actions``, the wrong shape or non-finite values.
    """
    if not isinstance(result, dict) or "actions" not in result:
        raise PolicyOutputError(f"policy returned {type(result).__name__} without 'actions'")
    try:
        actions = np.asarray(result["actions"], dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise PolicyOutputError(f"policy actions are not numeric: {err}") from None
    if actions.ndim != 2 or actions.shape[0] < 1 or (
            action_dim is not None and actions.shape[1] != action_dim):
        want = f"(H, {action_dim})" if action_dim is not None else "(H, D)"
        raise PolicyOutputError(f"policy returned actions of shape {actions.shape}, "
                                f"expected {want}")
    if not np.all(np.isfinite(actions)):
        raise PolicyOutputError("policy returned non-finite actions (NaN or inf)")
    return actions



def reset_policy(policy: Any, seed: int | None) -> None:
    """Start an episode: ``reset(seed=seed)``, or openpi's plain ``reset()``.

    An ``openpi_client`` ``BasePolicy`` (such as its ``WebsocketClientPolicy`` in front of our
    server) takes no seed; every other policy, ours or duck-typed, gets the episode's seed.
    """
    try:
        from openpi_client.base_policy import BasePolicy
    except ImportError:
        BasePolicy = None  # noqa: N806 - openpi-client is optional
    if BasePolicy is not None and isinstance(policy, BasePolicy) and \
            not isinstance(policy, Policy):
        policy.reset()
    else:
        policy.reset(seed=seed)

class ExpertPolicy(Policy):
    """The env's scripted expert behind the policy contract (one-step chunks, H = 1).

    Args:
        env: The env the expert acts in (wrapped or not); the expert reads its simulator state.
        noise: Action noise passed to the expert factory (0 = the clean expert).
    """

    def __init__(self, env: Any, noise: float = 0.0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self._expert = self._make(seed=None)

    def _make(self, seed: int | None) -> Any:
        import envs

        return envs.make_expert(self.env, noise=self.noise, seed=seed)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Return the expert's next action as a chunk of one."""
        action = np.asarray(self._expert.act(obs), dtype=np.float32)
        return {"actions": action[None, :]}

    def reset(self, *, seed: int | None = None) -> None:
        """Reset the expert (re-seeding its noise from the episode seed when noisy)."""
        if seed is not None and self.noise:
            self._expert = self._make(seed=seed)
        self._expert.reset()


class RandomPolicy(Policy):
    """Uniform random actions inside the action space: the floor every decoder must beat.

    Args:
        action_space: A bounded ``gymnasium.spaces.Box``.
        horizon: Chunk length H.
        seed: Base seed; ``reset(seed=s)`` re-seeds from ``s`` so episodes are reproducible.
    """

    def __init__(self, action_space: Any, horizon: int = 1, seed: int = 0) -> None:
        low = np.asarray(getattr(action_space, "low", None), dtype=np.float32)
        high = np.asarray(getattr(action_space, "high", None), dtype=np.float32)
        if low.ndim != 1 or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("action_space must be a bounded 1-D Box")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.low, self.high, self.horizon = low, high, int(horizon)
        self._rng = np.random.default_rng(seed)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Return ``horizon`` uniform random actions."""
        shape = (self.horizon, self.low.shape[0])
        return {"actions": self._rng.uniform(self.low, self.high, size=shape).astype(np.float32)}

    def reset(self, *, seed: int | None = None) -> None:
        """Re-seed from the episode seed when one is given."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
