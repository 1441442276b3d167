"""The scripted-expert registry: ``make_expert(env).act(obs) -> action``.

Each environment family registers a factory for its unwrapped env class; ``make_expert``
unwraps whatever ``gymnasium.make`` returned and looks the class (and its bases) up in an
explicit dict. Families register at ``import envs`` by reference (``"module:Name"`` strings),
so registering imports neither the env nor the expert module; the factory is imported on first
use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """A scripted policy with privileged access to the simulator."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next action for observation ``obs``."""

    def reset(self) -> None:
        """Forget per-episode state (called after ``env.reset``)."""


_EXPERTS: dict[str, Callable[..., Expert] | str] = {}
"""``"module:ClassName"`` of an env class -> its expert factory (or that factory's reference)."""


def _reference(obj: type | str) -> str:
    return obj if isinstance(obj, str) else f"{obj.__module__}:{obj.__qualname__}"


def register_expert(env_cls: type | str, factory: Callable[..., Expert] | str) -> None:
    """Register ``factory(env, **kwargs) -> Expert`` for unwrapped envs of class ``env_cls``.

    Args:
        env_cls: The env class, or its reference ``"package.module:ClassName"``.
        factory: A callable, or its reference ``"package.module:name"`` (imported on first use).
    """
    _EXPERTS[_reference(env_cls)] = factory


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
        factory = _EXPERTS.get(_reference(cls))
        if factory is None:
            continue
        if isinstance(factory, str):
            module, name = factory.split(":")
            factory = getattr(importlib.import_module(module), name)
        return factory(base, **kwargs)
    known = sorted(ref.split(":")[-1] for ref in _EXPERTS)
    raise ValueError(f"no scripted expert for {type(base).__name__}; experts exist for {known}")
