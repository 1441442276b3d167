"""The robodecode tabletop env: language-conditioned reach, push and pick-and-place in MuJoCo.

Usage: ``env = gymnasium.make("robodecode/TabletopPickPlace-v0", render_mode="rgb_array")``
(after ``import envs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.actions import check_action
from envs.rendering import make_renderer
from envs.tabletop import instructions as ins
from envs.tabletop.layout import BLOCK_HALF, ZONE_HALF, sample_layout

ASSET = Path(__file__).resolve().parent / "assets" / "tabletop.xml"
N_SUBSTEPS = 10
"""Physics steps (0.002 s each) per control step: 50 Hz control."""
MOVE_SCALE = 0.02
"""Metres the hand target moves per unit of dx, dy or dz action."""
TARGET_LEAD = 0.03
"""The hand's position target never runs more than this (m, per axis) ahead of the hand."""
TARGET_LOW = np.array([-0.26, -0.24, 0.015])
TARGET_HIGH = np.array([0.26, 0.24, 0.25])
FINGER_MAX = 0.04
"""Travel of each finger (m); the jaw opening is twice the finger position, 0 to 8 cm."""
ZONE_MARGIN = 0.005
"""A block counts as in a zone when its centre is at least this far inside the zone's edge."""
REACH_Z = (0.06, 0.12)
"""Reach succeeds with the grip point within 2 cm (horizontally) of the target and at a height
in this range (m above the table)."""
REACH_RADIUS = 0.02
SUCCESS_BONUS = 10.0
STATE_LOW = np.array([-0.3, -0.3, 0.0, -5.0, -5.0, -5.0, 0.0], np.float32)
STATE_HIGH = np.array([0.3, 0.3, 0.35, 5.0, 5.0, 5.0, 2 * FINGER_MAX], np.float32)
"""Bounds of ``state`` (the observation is clipped into them; the hand's joint limits keep the
position inside, and velocities beyond 5 m/s do not occur under the rate-limited servo)."""


class TabletopEnv(gym.Env):
    """A floating parallel-jaw gripper, four coloured blocks and three coloured target zones.

    The scene (``assets/tabletop.xml``) has a table whose top is at z = 0, a gripper on three
    slide joints driven by stiff position servos (kp 1e4, kv 150, force capped at 30 N), two
    fingers coupled by a joint equality and driven by one position actuator, four 4 cm blocks
    (red, green, blue, yellow; 50 g; free joints) and three flat 10 cm zones (purple, orange,
    white). Every reset draws a new layout (blocks within ±10° of yaw, never inside a zone),
    a start pose for the gripper and a task spec with its instruction.

    Tasks (``task=``): ``"reach"`` moves the grip point above the named block or zone;
    ``"push"`` pushes the named block into the named zone (no path blocked by a distractor);
    ``"pickplace"`` picks the named block and releases it inside the named zone (the other
    blocks are distractors); ``"multi"`` draws one of the three per episode.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: ``(dx, dy, dz, jaw)``. The first three move the hand's
    position target by ``MOVE_SCALE`` = 2 cm per unit per step (a step longer than 2 cm is
    scaled back to 2 cm, so the hand never exceeds 1 m/s; the target is then clipped to
    the workspace and to ``TARGET_LEAD`` = 3 cm ahead of the hand, which rate-limits the hand);
    ``jaw`` is the absolute jaw opening, -1 closed to +1 fully open (8 cm). Out-of-range values
    are clipped to [-1, 1]; a wrong shape, a NaN/inf or entries that are not real numbers
    (complex, strings, objects) raise ``ValueError``.

    ## Observation Space
    ``Dict`` with ``image`` (uint8 ``(image_size, image_size, 3)``, fixed front camera),
    ``wrist_image`` (same shape, camera on the hand; only with ``wrist_camera=True``),
    ``state`` (float32 ``(7,)``: grip point xyz in metres, grip velocity xyz in m/s, jaw
    opening in metres; no object poses; clipped to ``STATE_LOW``/``STATE_HIGH``) and
    ``instruction`` (``Text`` over lower-case letters, space, comma and full stop). With
    ``images=False`` the image keys are left out (for benchmarks and expert checks).

    ## Rewards
    ``reward_reach`` = -distance from the grip point to the reach target (the named block for
    push and pick-place); ``reward_grasp`` = 0.5 while the named block is held (pick-place);
    ``reward_place`` = -horizontal distance from the block to the zone centre (push,
    pick-place); ``reward_success`` = 10 on success. The reward is their sum; every part is in
    ``info`` along with ``is_success``, ``task`` and ``grasped``. The episode terminates on
    success; ``truncated`` comes from the ``TimeLimit`` of the registered id.

    ## Reset options
    ``reset(seed=s, options={"target": {"block": "red", "zone": "white"}})`` keeps everything
    that ``seed=s`` draws (task, layout, gripper start) and replaces the episode's target pair;
    the instruction's phrasing is then drawn for that pair from the templates of the split.
    Reach targets name one of the two (``{"block": "red"}`` or ``{"zone": "white"}``). The
    pair must be one ``target_choices()`` lists for the episode's task and split (held-out
    block/zone pairs are refused in ``"train"``), else ``ValueError``. Push layouts keep the
    path of the seed's own target clear, not necessarily the override's. Demonstrations of
    one layout under several targets make a policy read the instruction, not memorise the
    scene (``collect(..., targets_per_layout=K)``).

    ## Version History
    * v0: initial version (robodecode issue 3).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / (0.002 * N_SUBSTEPS)))}

    def __init__(self, task: str = "pickplace", split: str = "train",
                 render_mode: str | None = None, image_size: int = 128,
                 wrist_camera: bool = False, images: bool = True):
        """Build the env.

        Args:
            task: ``"reach"``, ``"push"``, ``"pickplace"`` or ``"multi"``.
            split: ``"train"`` or ``"heldout"`` instructions (see ``instructions.py``).
            render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the main camera).
            image_size: Height and width of the camera images in pixels (16 to 640).
            wrist_camera: Also observe ``wrist_image`` from a camera on the hand.
            images: Include camera images in observations (``False`` skips rendering).
        """
        if task not in (*ins.TASKS, "multi"):
            raise ValueError(f"task must be one of {(*ins.TASKS, 'multi')}, got {task!r}")
        if split not in ins.SPLITS:
            raise ValueError(f"split must be one of {ins.SPLITS}, got {split!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not isinstance(image_size, int | np.integer) or not 16 <= image_size <= 640:
            raise ValueError(f"image_size must be an int in [16, 640], got {image_size!r}")
        self.task, self.split, self.render_mode = task, split, render_mode
        self.image_size, self.wrist_camera, self.images = int(image_size), wrist_camera, images

        self.model = mujoco.MjModel.from_xml_path(str(ASSET))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._hand_q = [m.jnt_qposadr[m.joint(f"hand_{a}").id] for a in "xyz"]
        self._hand_v = [m.jnt_dofadr[m.joint(f"hand_{a}").id] for a in "xyz"]
        self._finger_q = [m.jnt_qposadr[m.joint(n).id] for n in ("finger_l", "finger_r")]
        self._block_q = {c: m.jnt_qposadr[m.joint(f"block_{c}").id] for c in ins.BLOCK_COLOURS}
        self._block_geom = {c: m.geom(f"block_{c}").id for c in ins.BLOCK_COLOURS}
        self._zone_body = {c: m.body(f"zone_{c}").id for c in ins.ZONE_COLOURS}
        self._pads = (m.geom("pad_l").id, m.geom("pad_r").id)
        self._renderer: mujoco.Renderer | None = None
        self._frame: np.ndarray | None = None
        self._target = np.zeros(3)
        self.task_spec: ins.TaskSpec | None = None
        self.elapsed_steps = 0

        obs = {"state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32),
               "instruction": spaces.Text(ins.MAX_INSTRUCTION_LENGTH, min_length=1,
                                          charset=ins.CHARSET)}
        if images:
            img = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
            obs["image"] = img
            if wrist_camera:
                obs["wrist_image"] = img
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

    @property
    def control_dt(self) -> float:
        """Seconds of simulated time per env step."""
        return float(self.model.opt.timestep * N_SUBSTEPS)

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: new layout, gripper start pose and instruction.

        Args:
            seed: Seed of the episode's draws.
            options: ``{"target": {"block": ..., "zone": ...}}`` overrides the target pair and
                keeps the layout of ``seed`` (see "Reset options" in the class docstring).
        """
        override = _target_option(options)
        super().reset(seed=seed)
        rng = self.np_random
        task = self.task if self.task != "multi" else ins.TASKS[int(rng.integers(3))]
        spec = ins.sample_task(rng, task, self.split)
        if override is not None:
            candidates = [s for s in ins.episode_choices(task, self.split)
                          if (s.block, s.zone) == override]
            if not candidates:
                raise ValueError(f"options['target']={options['target']!r} is not a"
                                 f" {task} target of the {self.split!r} split; valid: "
                                 f"{_targets(task, self.split)}")
        blocks, zones = sample_layout(rng, spec)  # the seed's own target: same layout
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        for colour, xy in zones.items():
            m.body_pos[self._zone_body[colour]] = (xy[0], xy[1], 0.0)
        for colour, (x, y, yaw) in blocks.items():
            q = self._block_q[colour]
            d.qpos[q:q + 7] = (x, y, BLOCK_HALF, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        hand = rng.uniform((-0.12, -0.12, 0.12), (0.12, 0.12, 0.18))
        d.qpos[self._hand_q] = hand
        d.qpos[self._finger_q] = FINGER_MAX
        self._target = hand.copy()
        d.ctrl[:] = (*hand, FINGER_MAX)
        mujoco.mj_step(m, d, nstep=N_SUBSTEPS)  # let the blocks settle on the table
        if override is not None:  # drawn last, so the layout and start pose stay the seed's
            spec = candidates[int(rng.integers(len(candidates)))]
        self.task_spec = spec
        self.elapsed_steps = 0
        obs = self._observe()
        return obs, self._info(self._reward_parts())

    def step(self, action):
        """Apply one action for ``control_dt`` seconds (see the class docstring)."""
        a = check_action(action, (4,), "(dx, dy, dz, jaw)")
        if self.task_spec is None:
            raise RuntimeError("call reset() before step()")
        hand, move = self.grip_pos, MOVE_SCALE * a[:3]
        norm = np.linalg.norm(move)
        if norm > MOVE_SCALE:  # diagonal moves are no faster than moves along one axis
            move *= MOVE_SCALE / norm
        self._target = np.clip(self._target + move, hand - TARGET_LEAD,
                               hand + TARGET_LEAD)
        self._target = np.clip(self._target, TARGET_LOW, TARGET_HIGH)
        self.data.ctrl[:3] = self._target
        self.data.ctrl[3] = (a[3] + 1.0) / 2.0 * FINGER_MAX
        mujoco.mj_step(self.model, self.data, nstep=N_SUBSTEPS)
        self.elapsed_steps += 1
        parts = self._reward_parts()
        info = self._info(parts)
        return self._observe(), float(sum(parts.values())), info["is_success"], False, info

    def render(self):
        """Return the main camera image (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array":
            return None
        if self._frame is None:
            self._frame = self.render_camera("main")
        return self._frame.copy()

    def close(self):
        """Release the renderer."""
        if self._renderer is not None:
            self._finalizer()
            self._renderer = None

    @property
    def target(self) -> dict[str, str | None]:
        """The episode's target pair ``{"block": ..., "zone": ...}`` (one is ``None`` in reach)."""
        if self.task_spec is None:
            raise RuntimeError("call reset() before reading the target")
        return {"block": self.task_spec.block, "zone": self.task_spec.zone}

    def target_choices(self) -> list[dict[str, str | None]]:
        """Every target pair ``options={"target": ...}`` accepts for this episode's task."""
        if self.task_spec is None:
            raise RuntimeError("call reset() before asking for target choices")
        return _targets(self.task_spec.task, self.split)

    # ------------------------------------------------------------------ privileged state
    @property
    def grip_pos(self) -> np.ndarray:
        """Position of the grip point between the finger pads (m).

        The hand body's frame is the grip point, so this is the hand's joint position (exact
        after a step, unlike ``site_xpos`` which is computed before the last integration).
        """
        return self.data.qpos[self._hand_q].copy()

    @property
    def hand_target(self) -> np.ndarray:
        """Current position target of the hand servo (m)."""
        return self._target.copy()

    @property
    def jaw_opening(self) -> float:
        """Distance between the finger pads (m)."""
        return float(self.data.qpos[self._finger_q].sum())

    def block_pos(self, colour: str) -> np.ndarray:
        """Centre of the ``colour`` block (privileged; for experts and tests)."""
        q = self._block_q[colour]
        return self.data.qpos[q:q + 3].copy()

    def zone_pos(self, colour: str) -> np.ndarray:
        """Centre of the ``colour`` zone on the table surface (privileged)."""
        return self.model.body_pos[self._zone_body[colour]].copy()

    def is_grasped(self, colour: str) -> bool:
        """Whether both finger pads touch the ``colour`` block."""
        return len(self._pads_touching(colour)) == 2

    def touches_gripper(self, colour: str) -> bool:
        """Whether either finger pad touches the ``colour`` block."""
        return bool(self._pads_touching(colour))

    def _pads_touching(self, colour: str) -> set[int]:
        d, g = self.data, self._block_geom[colour]
        g1, g2 = d.contact.geom1[:d.ncon], d.contact.geom2[:d.ncon]
        other = np.concatenate([g2[g1 == g], g1[g2 == g]])
        return set(other.tolist()) & set(self._pads)

    def in_zone(self, block: str, zone: str) -> bool:
        """Whether the ``block`` block rests on the table inside the ``zone`` zone."""
        p, z = self.block_pos(block), self.zone_pos(zone)
        inside = np.max(np.abs(p[:2] - z[:2])) < ZONE_HALF - ZONE_MARGIN
        return bool(inside and p[2] < BLOCK_HALF + 0.01)

    def reach_target(self) -> np.ndarray:
        """The point the reach task aims for: 8 cm above the named block or zone."""
        s = self.task_spec
        base = self.block_pos(s.block) if s.block is not None else self.zone_pos(s.zone)
        return np.array([base[0], base[1], 0.085])

    # ------------------------------------------------------------------ internals
    def _success(self) -> bool:
        s = self.task_spec
        if s.task == "reach":
            g, t = self.grip_pos, self.reach_target()
            return bool(np.linalg.norm(g[:2] - t[:2]) < REACH_RADIUS
                        and REACH_Z[0] <= g[2] <= REACH_Z[1])
        if not self.in_zone(s.block, s.zone):
            return False
        return s.task == "push" or not self.touches_gripper(s.block)

    def _reward_parts(self) -> dict[str, float]:
        s, g = self.task_spec, self.grip_pos
        parts = {"reward_reach": 0.0, "reward_grasp": 0.0, "reward_place": 0.0}
        if s.task == "reach":
            parts["reward_reach"] = -float(np.linalg.norm(g - self.reach_target()))
        else:
            b = self.block_pos(s.block)
            parts["reward_reach"] = -float(np.linalg.norm(g - b))
            parts["reward_place"] = -float(np.linalg.norm(b[:2] - self.zone_pos(s.zone)[:2]))
            if s.task == "pickplace" and self.is_grasped(s.block):
                parts["reward_grasp"] = 0.5
        parts["reward_success"] = SUCCESS_BONUS if self._success() else 0.0
        return parts

    def _info(self, parts: dict[str, float]) -> dict[str, Any]:
        s = self.task_spec
        grasped = s.block is not None and s.task != "reach" and self.is_grasped(s.block)
        return {"is_success": parts["reward_success"] > 0, "task": s.task,
                "grasped": bool(grasped), **parts}

    def _observe(self) -> dict[str, Any]:
        state = np.concatenate([self.grip_pos, self.data.qvel[self._hand_v],
                                [self.jaw_opening]]).astype(np.float32)
        state = np.clip(state, STATE_LOW, STATE_HIGH)
        obs: dict[str, Any] = {"state": state, "instruction": self.task_spec.instruction}
        self._frame = None
        if self.images:
            self._frame = self.render_camera("main")
            obs["image"] = self._frame.copy()
            if self.wrist_camera:
                obs["wrist_image"] = self.render_camera("wrist")
        return obs

    def render_camera(self, camera: str) -> np.ndarray:
        """Render ``"main"`` or ``"wrist"`` at ``image_size`` (uint8 H x W x 3)."""
        if self._renderer is None:
            # Closed before EGL's own teardown even if the user never calls close().
            self._renderer, self._finalizer = make_renderer(
                self, self.model, self.image_size, self.image_size)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()


def _targets(task: str, split: str) -> list[dict[str, str | None]]:
    pairs = dict.fromkeys((s.block, s.zone) for s in ins.episode_choices(task, split))
    return [{"block": b, "zone": z} for b, z in pairs]


def _target_option(options: dict[str, Any] | None) -> tuple[str | None, str | None] | None:
    """Check ``options`` of ``reset`` and return the requested ``(block, zone)`` or ``None``."""
    if options is None or options.get("target") is None:
        return None
    target = options["target"]
    if not isinstance(target, dict) or not target or set(target) - {"block", "zone"}:
        raise ValueError("options['target'] must be a dict with keys 'block' and/or 'zone', "
                         f"got {target!r}")
    block, zone = target.get("block"), target.get("zone")
    if block is not None and block not in ins.BLOCK_COLOURS:
        raise ValueError(f"target block must be one of {ins.BLOCK_COLOURS}, got {block!r}")
    if zone is not None and zone not in ins.ZONE_COLOURS:
        raise ValueError(f"target zone must be one of {ins.ZONE_COLOURS}, got {zone!r}")
    return block, zone
