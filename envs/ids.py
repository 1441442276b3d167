"""The gymnasium ids this project registers, and the one check every command runs on an id.

Usage: ``check_env_id("robodecode/TabletopPickPlace-v0")``; ``known_env_ids()``

``"module:Id-v0"`` imports ``module`` first (gymnasium's convention), which is how third-party
or test envs register themselves, also inside spawned worker processes.
"""

from __future__ import annotations

import difflib
import importlib

from envs.tabletop import DEFAULT_ID as DEFAULT_ENV_ID

__all__ = ["DEFAULT_ENV_ID", "check_env_id", "demo_env_kwargs", "known_env_ids"]


def known_env_ids(prefix: str = "robodecode/") -> list[str]:
    """The registered gymnasium ids starting with ``prefix`` (after ``import envs``)."""
    import gymnasium

    import envs  # noqa: F401  (registers the robodecode ids)

    return sorted(i for i in gymnasium.registry if i.startswith(prefix))


def check_env_id(env_id: str) -> str:
    """Make sure ``env_id`` is registered and return it.

    Raises:
        ValueError: One line: the id is unknown (listing the valid ``robodecode/*`` ids and the
            closest match) or its ``module:`` part cannot be imported.
    """
    import gymnasium

    import envs  # noqa: F401  (registers the robodecode ids)

    name = env_id
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"env id {env_id!r}: cannot import {module!r} ({err})") from None
    if name in gymnasium.registry:
        return env_id
    known = known_env_ids()
    close = difflib.get_close_matches(name, list(gymnasium.registry), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown env id {env_id!r}{hint}; valid ids: {', '.join(known)}")


def demo_env_kwargs(env_id: str) -> dict:
    """Keyword arguments the env of ``env_id`` asks for when demonstrations are recorded.

    An env class lists them in its ``DEMO_ENV_KWARGS`` (LIBERO: ``{"init_states": "sampled"}``,
    so demonstrations never start from the official evaluation states); ``{}`` when it has none.
    The id must be registered (see :func:`check_env_id`).
    """
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    check_env_id(env_id)
    entry = gymnasium.spec(env_id.split(":", 1)[-1]).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    return dict(getattr(creator, "DEMO_ENV_KWARGS", None) or {})
