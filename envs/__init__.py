"""Simulated tasks, scripted experts, demo datasets and symbolic planning domains.

Gymnasium + MuJoCo tasks with language instructions, third-party adapters (MetaWorld, LIBERO) and
symbolic planning domains.

``import envs`` registers the gymnasium ids in the ``robodecode`` namespace (registration only
records entry points; nothing heavy is imported). This package imports nothing else of
robodecode. Without a display it makes EGL MuJoCo's default (``MUJOCO_GL=egl``), since every
env here renders headless; this must precede the first ``import mujoco`` (MetaWorld's too).
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from envs import libero_tasks, metaworld_tasks, pusht_task, tabletop  # noqa: E402
from envs.experts import make_expert, register_expert  # noqa: E402

tabletop.register_envs()
metaworld_tasks.register_envs()
pusht_task.register_envs()
libero_tasks.register_envs()

__all__ = ["make_expert", "register_expert"]
