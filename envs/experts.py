"""The scripted-expert registry: ``make_expert(env).act(obs) -> action``.

Each environment family registers a factory for its unwrapped env class; ``make_expert``
unwraps whatever ``gymnasium.make`` returned and looks the class up in an explicit dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """A scripted policy with privileged access to the simulator."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next action for observation ``obs``."""

    def reset(self) -> None:
        """Forget per-episode state (called after ``env.reset``)."""


_EXPERTS: dict[type, Callable[..., Expert]] = {}


def register_expert(env_cls: type, factory: Callable[..., Expert]) -> None:
    """Register ``factory(env, **kwargs) -> Expert`` for unwrapped envs of class ``env_cls``."""
    _EXPERTS[env_cls] = factory


def make_expert(env: Any, **kwargs: Any) -> Expert:
    """Build the scripted expert for ``env`` (wrapped or not).

    Args:
        env: An env created by ``gymnasium.make`` or constructed directly.
        **kwargs: Passed to the family's factory (e.g. ``noise=0.1``, ``seed=0``).

    Raises:
        ValueError: If no expert is registered for the env's class.
    """
    base = getattr(env, "unwrapped", env)
    for cls in type(base).__mro__:
        if cls in _EXPERTS:
            return _EXPERTS[cls](base, **kwargs)
    known = sorted(c.__name__ for c in _EXPERTS)
    raise ValueError(f"no scripted expert for {type(base).__name__}; experts exist for {known}")
