"""The robodecode MuJoCo tabletop: a parallel-jaw gripper, coloured blocks and target zones.

``register_envs()`` (called by ``import envs``) records the gymnasium ids below with string
entry points, so registering imports neither MuJoCo nor the env module.
"""

from __future__ import annotations

TABLETOP_TASKS: dict[str, tuple[str, int]] = {
    "robodecode/TabletopReach-v0": ("reach", 50),
    "robodecode/TabletopPush-v0": ("push", 120),
    "robodecode/TabletopPickPlace-v0": ("pickplace", 150),
    "robodecode/TabletopMultiTask-v0": ("multi", 150),
}
"""Registered id -> (task name passed to ``TabletopEnv``, ``max_episode_steps``)."""

TABLETOP_IDS: tuple[str, ...] = tuple(TABLETOP_TASKS)
"""Every tabletop gymnasium id; ``robodecode/TabletopPickPlace-v0`` is the default task."""

DEFAULT_ID = "robodecode/TabletopPickPlace-v0"

REARRANGE_ID = "robodecode/TabletopRearrange-v0"
"""Several pick-and-place steps under temporal conditions (``envs.tabletop.rearrange``)."""
REARRANGE_MAX_STEPS = 400


def register_envs() -> None:
    """Register the tabletop gymnasium ids in the ``robodecode`` namespace (idempotent)."""
    import gymnasium as gym

    from envs.experts import register_expert

    for env_id, (task, max_steps) in TABLETOP_TASKS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point="envs.tabletop.env:TabletopEnv",
                     max_episode_steps=max_steps, kwargs={"task": task})
    if REARRANGE_ID not in gym.registry:
        gym.register(id=REARRANGE_ID, entry_point="envs.tabletop.rearrange:TabletopRearrangeEnv",
                     max_episode_steps=REARRANGE_MAX_STEPS)
    register_expert("envs.tabletop.env:TabletopEnv", "envs.tabletop.expert:TabletopExpert")


__all__ = ["DEFAULT_ID", "REARRANGE_ID", "TABLETOP_IDS", "TABLETOP_TASKS", "register_envs"]
