"""The base of the envs that run one of several per-task envs per episode (MT10, LIBERO suites).

Usage: subclass, set ``task_env`` (the per-task env class), then in ``__init__`` call
``self._setup(tasks, render_mode, **task_kwargs)`` and pick ``self._current`` in ``reset``
with ``self._env(task)``.

Each task's env is built the first time an episode needs it and kept; stepping, rendering and
closing go to the current one, so the multi-task env keeps every task's contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np


class TaskSwitchingEnv(gymnasium.Env):
    """One of ``tasks`` per episode; the per-task envs (``task_env``) do the work."""

    task_env: ClassVar[type[gymnasium.Env]]

    def _setup(self, tasks: Sequence[str], render_mode: str | None, **task_kwargs: Any) -> None:
        """Keep the tasks and the per-task kwargs; build the first task's env for the spaces."""
        self.tasks = tuple(tasks)
        self.render_mode = render_mode
        self._kwargs = dict(render_mode=render_mode, **task_kwargs)
        self._envs: dict[str, gymnasium.Env] = {}
        self._current = self._env(self.tasks[0])
        self.observation_space = self._current.observation_space
        self.action_space = self._current.action_space
        self.control_dt = self._current.control_dt
        self.image_size = self._current.image_size

    @property
    def task(self) -> str:
        """The name of the current episode's task."""
        return self._current.task

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Step the current task's env."""
        return self._current.step(action)

    def render(self) -> np.ndarray | None:
        """Return the current task's main camera frame (``render_mode="rgb_array"``)."""
        return self._current.render()

    def render_camera(self, camera: str) -> np.ndarray:
        """Render ``camera`` of the current task (see the task env's ``render_camera``)."""
        return self._current.render_camera(camera)

    def close(self) -> None:
        """Close every task env built so far."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _env(self, task: str) -> gymnasium.Env:
        if task not in self._envs:
            self._envs[task] = self.task_env(task, **self._kwargs)
        return self._envs[task]
