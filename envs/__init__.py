"""Simulated tasks, scripted experts, demo datasets and symbolic planning domains.

Gymnasium + MuJoCo tasks with language instructions, third-party adapters (MetaWorld) and
symbolic planning domains.

``import envs`` registers the gymnasium ids in the ``robodecode`` namespace (registration only
records entry points; nothing heavy is imported). This package imports nothing else of
robodecode.
"""

from envs import metaworld_tasks, pusht_task, tabletop
from envs.experts import make_expert, register_expert

tabletop.register_envs()
metaworld_tasks.register_envs()
pusht_task.register_envs()

__all__ = ["make_expert", "register_expert"]
