"""MetaWorld MT10 as one language-conditioned env: each episode draws one of the ten tasks.

Usage: ``env = gymnasium.make("robodecode/MetaWorld-MT10-v0"); obs, _ = env.reset(seed=0)``

The instruction is the only thing that tells a policy which task it is in (besides the scene
itself), so MT10 measures instruction following across tasks. Each task's MetaWorld env is
built the first time an episode needs it (about a second each) and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.metaworld_tasks import TASKS, MetaWorldTaskEnv
from envs.multitask import TaskSwitchingEnv


class MetaWorldMultiTaskEnv(TaskSwitchingEnv):
    """One of several MetaWorld tasks per episode, behind the same contract as each task.

    ## Action Space
    As ``MetaWorldTaskEnv``: ``Box(-1, 1, (4,), float32)`` (dx, dy, dz, gripper effort).

    ## Observation Space
    As ``MetaWorldTaskEnv`` (``image``, optional ``wrist_image``, ``state`` (4,),
    ``instruction``); the instruction comes from the episode's task.

    ## Rewards
    The episode's task's MetaWorld reward; ``info["task"]`` names the task and
    ``info["is_success"]`` is its success. Terminates on success; the registered id truncates
    at 500 steps, the longest single-task limit (peg-insert-side's).

    ## Version History
    * v0: the MetaWorld 3.1.1 MT10 tasks, uniformly sampled from ``reset(seed=...)``;
      ``reset(options={"task": name})`` forces a task.
    """

    task_env = MetaWorldTaskEnv
    metadata = MetaWorldTaskEnv.metadata

    def __init__(
        self,
        tasks: Sequence[str] = tuple(TASKS),
        split: str = "train",
        render_mode: str | None = None,
        image_size: int = 128,
        camera: str = "corner",
        wrist_camera: bool = False,
        images: bool = True,
        max_task_envs: int | None = None,
    ) -> None:
        """Build the first task's env (the others are built on demand).

        Args:
            tasks: MetaWorld env names to sample from (default: all ten of ``TASKS``).
            split: ``"train"`` or ``"heldout"`` instruction phrasings.
            render_mode: ``None`` or ``"rgb_array"``.
            image_size: Side of the square images in pixels.
            camera: Main camera name (see ``envs.metaworld_tasks.CAMERAS``).
            wrist_camera: Also return ``wrist_image``.
            images: Include camera images in observations.
            max_task_envs: Task envs kept built at once, the least recently used closed
                beyond it (default: ``ROBODECODE_MAX_TASK_ENVS``, else all).

        Raises:
            ValueError: If ``tasks`` is empty, repeats or names an unknown task, or another
                argument is invalid (raised by ``MetaWorldTaskEnv``).
        """
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct and non-empty, got {tasks}")
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"tasks {unknown} unknown; known: {sorted(TASKS)}")
        self._setup(tasks, render_mode, max_task_envs, split=split, image_size=image_size,
                    camera=camera, wrist_camera=wrist_camera, images=images)

    @property
    def privileged_obs(self) -> np.ndarray:
        """The current task's 39-D MetaWorld observation (for the expert)."""
        return self._current.privileged_obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Draw a task (or take ``options["task"]``) and reset it from this env's seed stream.

        Raises:
            ValueError: If ``options["task"]`` is not one of ``tasks``.
        """
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.tasks)))
        task = (options or {}).get("task", self.tasks[index])
        if task not in self.tasks:
            raise ValueError(f"options['task'] must be one of {self.tasks}, got {task!r}")
        self._current = self._env(task)
        return self._current.reset(seed=int(self.np_random.integers(2**63 - 1)))

