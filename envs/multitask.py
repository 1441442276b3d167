"""The base of the envs that run one of several per-task envs per episode (MT10, LIBERO suites).

Usage: subclass, set ``task_env`` (the per-task env class), then in ``__init__`` call
``self._setup(tasks, render_mode, **task_kwargs)`` and pick ``self._current`` in ``reset``
with ``self._env(task)``.

Each task's env is built the first time an episode needs it and kept (at most
``max_task_envs`` of them: the least recently used is closed to make room); stepping, rendering
and closing go to the current one, so the multi-task env keeps every task's contract.

A LIBERO task env holds its MuJoCo model (~270 MB, textures and meshes) and a renderer: about
0.8 GB, so a suite keeping all ten takes ~8.5 GB per process. ``max_task_envs`` (or the
``ROBODECODE_MAX_TASK_ENVS`` environment variable, which reaches every eval worker) trades that
memory for rebuilding an evicted task's env when it comes round again (3-7 s).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np


class TaskSwitchingEnv(gymnasium.Env):
    """One of ``tasks`` per episode; the per-task envs (``task_env``) do the work."""

    task_env: ClassVar[type[gymnasium.Env]]

    def _setup(self, tasks: Sequence[str], render_mode: str | None,
               max_task_envs: int | None = None, **task_kwargs: Any) -> None:
        """Keep the tasks and the per-task kwargs; build the first task's env for the spaces.

        Args:
            tasks: The task names.
            render_mode: Passed to every task env.
            max_task_envs: Task envs kept built at once (``None``: the environment variable
                ``ROBODECODE_MAX_TASK_ENVS`` if set, else all).
            **task_kwargs: Passed to every task env.

        Raises:
            ValueError: If ``max_task_envs`` (or the variable) is not a positive integer.
        """
        self.tasks = tuple(tasks)
        self.render_mode = render_mode
        self.max_task_envs = _max_task_envs(max_task_envs)
        self._kwargs = dict(render_mode=render_mode, **task_kwargs)
        self._envs: dict[str, gymnasium.Env] = {}  # least recently used first
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
        """The task's env, built if needed; the least recently used beyond the cap are closed."""
        env = self._envs.pop(task, None)
        if env is None:
            env = self.task_env(task, **self._kwargs)
        self._envs[task] = env
        while self.max_task_envs is not None and len(self._envs) > self.max_task_envs:
            self._envs.pop(next(iter(self._envs))).close()
        return env


def _max_task_envs(value: int | None) -> int | None:
    """``value``, else ``ROBODECODE_MAX_TASK_ENVS`` as an int, else ``None``; checked positive."""
    if value is None:
        text = os.environ.get("ROBODECODE_MAX_TASK_ENVS", "").strip()
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"ROBODECODE_MAX_TASK_ENVS must be a positive integer, got {text!r}"
                             ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_task_envs must be a positive integer, got {value!r}")
    return value
