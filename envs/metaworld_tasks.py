"""MetaWorld v3 tasks behind robodecode's observation contract (registered when installed).

Usage: ``env = gymnasium.make("robodecode/MetaWorld-PickPlace-v0", render_mode="rgb_array")``

The ten MT10 tasks of MetaWorld v3 are registered as ``robodecode/MetaWorld-<Task>-v0`` (the
MetaWorld name in CamelCase without its ``-v3`` suffix), plus ``robodecode/MetaWorld-MT10-v0``
(``envs/metaworld_multitask.py``), all listed in ``METAWORLD_IDS`` and registered only when the
``metaworld`` package is importable. Registration records string entry points: neither
``metaworld`` nor ``mujoco`` is imported until an env is made. MetaWorld's own scripted policies
(``envs/metaworld_expert.py``) are the experts, reading the privileged 39-D MetaWorld
observation that the env keeps on itself (``env.unwrapped.privileged_obs``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.actions import check_action
from envs.experts import register_expert
from envs.rendering import make_renderer


@dataclass(frozen=True)
class MetaWorldTask:
    """One MetaWorld task as robodecode exposes it.

    Attributes:
        name: MetaWorld's env name, e.g. ``"pick-place-v3"``.
        id_name: The CamelCase part of the gymnasium id, e.g. ``"PickPlace"``.
        train: Instruction phrasings used for training episodes.
        heldout: Phrasings reserved for evaluating generalization (never in ``train``).
        max_episode_steps: Time limit of the registered id.
    """

    name: str
    id_name: str
    train: tuple[str, ...]
    heldout: tuple[str, ...]
    max_episode_steps: int = 200


TASKS: dict[str, MetaWorldTask] = {
    t.name: t
    for t in (
        MetaWorldTask(
            "reach-v3",
            "Reach",
            (
                "reach the goal with the gripper",
                "move the gripper to the target",
                "go to the goal position",
            ),
            ("bring the hand to the target point",),
        ),
        MetaWorldTask(
            "push-v3",
            "Push",
            (
                "push the puck to the goal",
                "slide the puck onto the target",
                "shove the puck to the goal position",
            ),
            ("nudge the puck over to the target",),
        ),
        MetaWorldTask(
            "pick-place-v3",
            "PickPlace",
            (
                "pick up the puck and place it at the goal",
                "grab the puck and put it on the target",
                "lift the puck and move it to the goal position",
            ),
            ("take the puck and set it down at the target",),
        ),
        MetaWorldTask(
            "door-open-v3",
            "DoorOpen",
            ("open the door", "pull the door open", "swing the door open"),
            ("get the door open",),
        ),
        MetaWorldTask(
            "drawer-open-v3",
            "DrawerOpen",
            ("open the drawer", "pull the drawer out", "slide the drawer open"),
            ("pull open the drawer",),
        ),
        MetaWorldTask(
            "drawer-close-v3",
            "DrawerClose",
            ("close the drawer", "push the drawer shut", "slide the drawer closed"),
            ("shut the drawer",),
        ),
        MetaWorldTask(
            "button-press-topdown-v3",
            "ButtonPressTopdown",
            ("press the button from above", "push the button down", "press down on the button"),
            ("hit the button from the top",),
        ),
        MetaWorldTask(
            "peg-insert-side-v3",
            "PegInsertSide",
            (
                "insert the peg into the hole",
                "push the peg into the side hole",
                "put the peg in the hole",
            ),
            ("slot the peg into the opening",),
            max_episode_steps=500,  # MetaWorld's own horizon; its expert is slow and unsure here
        ),
        MetaWorldTask(
            "window-open-v3",
            "WindowOpen",
            ("open the window", "slide the window open", "push the window open"),
            ("move the window to the open position",),
        ),
        MetaWorldTask(
            "window-close-v3",
            "WindowClose",
            ("close the window", "slide the window shut", "push the window closed"),
            ("move the window to the closed position",),
        ),
    )
}

# Every character any instruction uses (gymnasium's default Text charset has no space).
INSTRUCTION_CHARSET = "".join(
    sorted({c for t in TASKS.values() for s in t.train + t.heldout for c in s})
)
_MAX_INSTRUCTION_LEN = max(len(s) for t in TASKS.values() for s in t.train + t.heldout)

# MetaWorld's cameras; the four ``corner`` cameras are rolled 180 degrees in the MJCF (their
# image "up" points at the floor), so their frames are rotated by 180 degrees to stand upright.
CAMERAS: dict[str, bool] = {
    "corner": True,
    "corner2": True,
    "corner3": True,
    "corner4": True,
    "topview": False,
    "behindGripper": False,
}
WRIST_CAMERA = "behindGripper"

# Bounds of the state vector: MetaWorld's hand box (it clips the hand position to it) and the
# gripper opening, which MetaWorld normalizes to [0, 1].
_STATE_LOW = np.array([-0.525, 0.348, -0.0525, 0.0], dtype=np.float32)
_STATE_HIGH = np.array([0.525, 1.025, 0.7, 1.0], dtype=np.float32)


def env_id(task: str) -> str:
    """Return the gymnasium id of MetaWorld task ``task`` (e.g. ``"pick-place-v3"``).

    Raises:
        ValueError: If ``task`` is not one of ``TASKS``.
    """
    _check_task(task)
    return f"robodecode/MetaWorld-{TASKS[task].id_name}-v0"


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")


MT10_ID = "robodecode/MetaWorld-MT10-v0"  # one of the ten tasks per episode
METAWORLD_IDS: tuple[str, ...] = (*(env_id(name) for name in TASKS), MT10_ID)


class MetaWorldTaskEnv(gymnasium.Env):
    """A MetaWorld v3 task with an image, proprioception and a language instruction.

    Each episode draws a fresh object/goal configuration from MetaWorld's own task distribution
    (the ``rand_vec`` MetaWorld's MT1 benchmark samples 50 of), seeded from
    ``reset(seed=...)``, so the same seed gives the same episode, images included. The
    instruction is one of the task's phrasings for the chosen ``split``.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: MetaWorld's action, the hand's position change (dx, dy, dz;
    1.0 = 1 cm per step) and the gripper effort (-1 open, +1 close). Out-of-range values are
    clipped; a wrong shape, a NaN/inf or entries that are not real numbers (complex, strings,
    objects) raise ``ValueError``.

    ## Observation Space
    A ``Dict`` with ``image`` (uint8 ``(image_size, image_size, 3)`` from ``camera``, upright;
    absent with ``images=False``),
    optionally ``wrist_image`` (same size, MetaWorld's ``behindGripper`` camera), ``state``
    (float32 ``(4,)``: hand x, y, z in metres and gripper opening in [0, 1]; no object poses) and
    ``instruction`` (``Text`` over ``INSTRUCTION_CHARSET``). The privileged 39-D MetaWorld
    observation (goal visible) is ``env.unwrapped.privileged_obs``, for experts only.

    ## Rewards
    MetaWorld's shaped v2 reward in [0, 10]; its parts (``near_object``, ``grasp_success``,
    ``grasp_reward``, ``in_place_reward``, ``obj_to_target``, ``unscaled_reward``) are in
    ``info``, with ``info["is_success"]`` from MetaWorld's ``success``. The episode terminates on
    success; the registered ids truncate at ``max_episode_steps``.

    ## Version History
    * v0: MetaWorld 3.1.1 MT10 tasks, fast rendering (no shadows, reflections or multisampling).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str = "pick-place-v3",
        split: str = "train",
        render_mode: str | None = None,
        image_size: int = 128,
        camera: str = "corner",
        wrist_camera: bool = False,
        images: bool = True,
    ) -> None:
        """Build the MetaWorld env and its renderer settings.

        Args:
            task: MetaWorld env name, one of ``TASKS``.
            split: ``"train"`` or ``"heldout"`` instruction phrasings.
            render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the main image).
            image_size: Side of the square images in pixels (16 to 480).
            camera: One of ``CAMERAS``; ``corner`` cameras are rotated upright.
            wrist_camera: Also return ``wrist_image`` from the ``behindGripper`` camera.
            images: Include camera images in observations (``False`` skips rendering, for
                state-only experts and speed measurements).

        Raises:
            ValueError: If an argument is out of its documented range.
        """
        _check_task(task)
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 16 <= int(image_size) <= 480:
            raise ValueError(f"image_size must be in [16, 480], got {image_size}")
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {sorted(CAMERAS)}, got {camera!r}")
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self._mujoco = mujoco
        self.task = task
        self.split = split
        self.render_mode = render_mode
        self.image_size = int(image_size)
        self.camera = camera
        self.images = bool(images)
        self.wrist_camera = bool(wrist_camera) and self.images
        self.instructions = getattr(TASKS[task], split)

        mw = ALL_V3_ENVIRONMENTS[task]()
        # Goal-observable (the experts need the goal) with per-reset seeded task sampling.
        mw._partially_observable = False
        del mw.sawyer_observation_space  # a cached_property that depends on observability
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        mw._set_task_called = True
        mw.max_path_length = np.iinfo(np.int64).max  # our TimeLimit truncates, not MetaWorld
        mw.model.vis.quality.offsamples = 0  # no multisampling (must precede the renderer)
        self._mw = mw
        self.control_dt = float(mw.dt)
        self._renderer = None
        self._privileged: np.ndarray | None = None
        self._instruction = self.instructions[0]

        size = (self.image_size, self.image_size, 3)
        obs_spaces: dict[str, spaces.Space] = {
            "state": spaces.Box(_STATE_LOW, _STATE_HIGH, dtype=np.float32),
            "instruction": spaces.Text(
                _MAX_INSTRUCTION_LEN, min_length=1, charset=INSTRUCTION_CHARSET
            ),
        }
        if self.images:
            obs_spaces["image"] = spaces.Box(0, 255, size, dtype=np.uint8)
        if self.wrist_camera:
            obs_spaces["wrist_image"] = spaces.Box(0, 255, size, dtype=np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)

    @property
    def privileged_obs(self) -> np.ndarray:
        """MetaWorld's full 39-D observation (hand, gripper, objects, previous frame, goal)."""
        if self._privileged is None:
            raise RuntimeError("call reset() before reading privileged_obs")
        return self._privileged.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode: sample the task configuration and an instruction from ``seed``."""
        super().reset(seed=seed)
        # Clear solver warm-starts etc. so an episode never depends on the one before it.
        self._mujoco.mj_resetData(self._mw.model, self._mw.data)
        self._mw.np_random = np.random.default_rng(int(self.np_random.integers(2**63 - 1)))
        self._privileged, _ = self._mw.reset()
        self._instruction = self.instructions[int(self.np_random.integers(len(self.instructions)))]
        return self._observation(), {"is_success": False, "task": self.task}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Apply one 4-D action (clipped to [-1, 1]) for MetaWorld's 5 physics substeps."""
        if self._privileged is None:
            raise RuntimeError("call reset() before step()")
        action = check_action(action, (4,), "(dx, dy, dz, grip)")
        raw, reward, _, _, mw_info = self._mw.step(action)
        self._privileged = np.asarray(raw, dtype=np.float64)
        success = bool(mw_info["success"])
        info = {k: float(v) for k, v in mw_info.items() if k != "success"}
        info.update(is_success=success, task=self.task)
        return self._observation(), float(reward), success, False, info

    def render(self) -> np.ndarray | None:
        """Return the main camera's current frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera("main")

    def render_camera(self, camera: str) -> np.ndarray:
        """Render ``camera`` now: ``"main"``, ``"wrist"`` or a name in ``CAMERAS`` (upright).

        Raises:
            ValueError: If ``camera`` is unknown.
        """
        name = {"main": self.camera, "wrist": WRIST_CAMERA}.get(camera, camera)
        if name not in CAMERAS:
            raise ValueError(f"camera must be 'main', 'wrist' or one of {sorted(CAMERAS)}")
        return self._render(name)

    def close(self) -> None:
        """Release the EGL renderer and MetaWorld's own resources."""
        if self._renderer is not None:
            self._close_renderer()
            self._renderer = None
        self._mw.close()

    def _observation(self) -> dict[str, Any]:
        obs = {
            "state": np.clip(self._privileged[:4], _STATE_LOW, _STATE_HIGH).astype(np.float32),
            "instruction": self._instruction,
        }
        if self.images:
            obs["image"] = self._render(self.camera)
        if self.wrist_camera:
            obs["wrist_image"] = self._render(WRIST_CAMERA)
        return obs

    def _render(self, camera: str) -> np.ndarray:
        mujoco = self._mujoco
        if self._renderer is None:
            self._renderer, self._close_renderer = make_renderer(
                self, self._mw.model, self.image_size, self.image_size)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._renderer.update_scene(self._mw.data, camera=camera)
        frame = self._renderer.render()
        if CAMERAS.get(camera, False):
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame)


def register_envs() -> None:
    """Register ``robodecode/MetaWorld-<Task>-v0`` and ``MT10_ID`` when metaworld is importable."""
    if importlib.util.find_spec("metaworld") is None:
        return
    for name, task in TASKS.items():
        if env_id(name) in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id(name),
            entry_point="envs.metaworld_tasks:MetaWorldTaskEnv",
            max_episode_steps=task.max_episode_steps,
            kwargs={"task": name},
        )
    if MT10_ID not in gymnasium.registry:
        gymnasium.register(
            id=MT10_ID,
            entry_point="envs.metaworld_multitask:MetaWorldMultiTaskEnv",
            max_episode_steps=max(t.max_episode_steps for t in TASKS.values()),
        )
    for env_cls in ("envs.metaworld_tasks:MetaWorldTaskEnv",
                    "envs.metaworld_multitask:MetaWorldMultiTaskEnv"):
        register_expert(env_cls, "envs.metaworld_expert:MetaWorldExpert")
