"""A privileged-state expert for LIBERO's tasks (LIBERO-Object, -Spatial, -Goal, most of -10).

Usage: ``expert = envs.make_expert(gymnasium.make("robodecode/LIBERO-Object-Milk-v0"))``

It reads object geometry and poses from the simulator (``env.unwrapped.sim_env``) and plans,
each step, one waypoint of: rise to a travel height above every object near the hand's way,
move over the object with the fingers turned to a grasp yaw, descend, close until the fingers
stop, lift (gently for the first centimetres), carry over the container's region, lower,
release, rise. The grasp yaw is the one whose finger span fits the object (a box is taken
across its short side, within about 40 degrees) and whose hand, 21 cm wide along the fingers,
keeps the most clearance from neighbours taller than the hand's lowest point: a tall carton
beside a flat box is what a yaw-blind grasp hits. Objects too wide for the fingers (bowls) are
pinched at the rim. A grasp that comes up empty, or an object dropped on the way, is retried
with a fresh plan made once the object has settled.

The place is the task's BDDL goal region: an object (the plate, the basket's inside) or a
region of a fixture or the table (the stove's cook region, the cabinet's top); the object is
lowered onto whatever stands under it. Goals that are no pick and place go to the skills of
``envs/libero_skills.py``: ``Turnon`` turns a stove's knob, ``Open`` pulls a drawer open, ``On``
of a plate too flat to grasp on a table region slides it there, and ``In`` a closed drawer
opens the drawer first. Under an overhang (the open drawer above the bowl) the hand comes
down beside the grasp and moves across just above the object, and leaves the same way.

A goal of several predicates (LIBERO-10: two objects into the basket, the knob turned and then
the pot on the stove) is worked through in BDDL order: once a place or a skill has ended and its
predicate holds, the expert moves on to the first predicate that does not; a place whose
predicate still fails a while after the release is planned again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.libero_geometry import (
    DOWN,
    Footprint,
    axis_angle_error,
    footprints,
    free_spot,
    grip_frame,
    object_points,
    path_top,
    region_owner,
    site_frame,
)
from envs.libero_grasps import (
    fits_between_pads,
    grasp_yaw,
    is_open_container,
    part_grasp,
    rim_grasp,
    side_entry,
)
from envs.libero_skills import checked_goals, skill_for

POS_SCALE = 0.05  # metres per unit of the OSC position action
ROT_SCALE = 0.5  # radians per unit of the OSC rotation action
HAND_ABOVE_GRIP = 0.030  # the hand's lowest point above the grip site (Panda, robosuite 1.4)
PAD_BELOW_GRIP = 0.005  # the finger pads' lowest point below the grip site
TRAVEL_CLEARANCE = 0.05  # fingertips (or a carried object) above what lies on the way
CLOSE_STEPS = 12  # at least this many closing steps, then until the fingers stop
CLOSE_STEPS_MAX = 30
FINGERS_STILL = 0.005  # m/s: finger joints slower than this have closed on something
OPEN_STEPS = 10
DROP_GAP = 0.04  # the object this much farther from the grip than when grasped: dropped
LIFT_START_SPEED = 0.3  # the first 3 cm of a lift, gently: a pinched rim slips on a jerk
PHASE_LIMIT = 90  # steps before a phase that cannot converge gives up and moves on
STALL_STEPS = 8  # a phase whose goal distance shrank < 2 mm over this many steps has stalled
SETTLE_STEPS = 5  # after a place, wait this long before checking its goal (several goals)
WRIST_MARGIN = 0.15  # radians short of the last joint's limit a turn may wind the wrist
RETRY_AFTER = 40  # a place whose goal does not hold this long after it: planned again


class LiberoExpert:
    """Scripted expert for LIBERO tasks (see the module docstring).

    Args:
        env: The unwrapped LIBERO env (``LiberoTaskEnv`` or ``LiberoSuiteEnv``).
        noise: Standard deviation of Gaussian noise added to the six motion entries.
        seed: Seed of the noise generator.

    Raises:
        ValueError: If ``noise`` is negative.
    """

    def __init__(self, env: Any, noise: float = 0.0, seed: int | None = None):
        if not noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._episode: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the plan (it is also rebuilt whenever the env starts a new episode)."""
        self._episode = None

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next 7-D action; ``obs`` is not needed (the simulator is read)."""
        env = getattr(self.env, "current", self.env)
        episode = (id(env), env.episode)
        if episode != self._episode:
            self._episode = episode
            self._start(env.sim_env)
        if getattr(self.skill, "done", False) and self.goal[0] in ("in", "on"):
            self._begin(self.goal, skills=False)  # the drawer is open: now put it in
        elif len(self.goals) > 1:
            self._next_goal()
        if self.skill is not None:
            grip_pos, grip_mat = site_frame(self.sim_env, "gripper0_grip_site")
            goal, frame, gripper, speed = self.skill.step(grip_pos, grip_mat)
            action = self._command(goal, grip_pos, grip_mat, gripper, speed, frame)
        else:
            action = self._step()
        if self.noise > 0.0:
            action[:6] += self._rng.normal(0.0, self.noise, size=6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # -------------------------------------------------------------------- planning
    def _start(self, sim_env: Any) -> None:
        self.sim_env = sim_env
        self.goals = checked_goals(sim_env.parsed_problem["goal_state"])
        self.points = object_points(sim_env)  # the episode's geometry: read once, every goal
        robot = sim_env.robots[0]
        self.finger_dofs = list(robot._ref_gripper_joint_vel_indexes)
        self.wrist_dof = robot._ref_joint_pos_indexes[-1]
        model = sim_env.sim.model._model
        self.wrist_limit = float(model.jnt_range[model.dof_jntid[
            robot._ref_joint_vel_indexes[-1]], 1])
        self._begin(self.goals[0])

    def _next_goal(self) -> None:
        """With several goals: once this one holds and the hand is clear, go to the next.

        The next is the first goal (in BDDL order) that does not hold; a pick and place
        that ended without its goal holding (the object bounced off) is planned again.
        """
        over = (self.phase == "retreat" and self.phase_steps >= SETTLE_STEPS if self.skill is None
                else getattr(self.skill, "done", False) or self.skill.phase == "retreat")
        if not over:
            return
        holds = [bool(self.sim_env._eval_predicate(g)) for g in self.goals]
        if all(holds):
            return
        if holds[self.goals.index(self.goal)]:
            self._begin(self.goals[holds.index(False)])
        elif self.skill is None and self.phase_steps >= RETRY_AFTER:
            self._begin(self.goal)

    def _begin(self, goal: list[str], skills: bool = True) -> None:
        sim_env = self.sim_env
        self.goal = goal
        self.skill = skill_for(sim_env, goal) if skills else None
        if self.skill is not None:
            return
        self.target, place = goal[1:3]
        # A place is an object (the plate), an object's region ("basket_1_contain_region":
        # plan with the basket), or a region of a fixture or the table ("flat_stove_1_cook_region",
        # "main_table_stove_front_region"): aim at the region's site, land on what is under it.
        self.container, self.place_site = region_owner(sim_env, place), None
        if self.container not in sim_env.objects_dict:
            self.place_site = place
        self.phase, self.phase_steps, self.attempts = "rise", 0, 0
        self.distances: list[float] = []
        self.failed_angles: tuple[float, ...] = ()
        self.replan, self.hold = False, float("inf")
        self._plan_grasp()

    def _plan_grasp(self) -> None:
        prints = footprints(self.sim_env, self.points)
        target = prints[self.target]
        others = [p for name, p in prints.items() if name != self.target]
        self.rest_bottom = target.bottom
        if fits_between_pads(target):
            # Pads as low as the table allows, the hand's lowest point above the object's top.
            self.grasp_z = max(target.bottom + PAD_BELOW_GRIP + 0.002,
                               target.top - HAND_ABOVE_GRIP + 0.008)
            self.yaw = grasp_yaw(target, others, self.grasp_z + HAND_ABOVE_GRIP, self.grasp_z)
            self.offset = np.zeros(2)
        elif not is_open_container(target) and (
                part := part_grasp(target, others, HAND_ABOVE_GRIP)) is not None:
            point, self.grasp_z, self.yaw = part  # too wide, and closed: a part of it (a knob)
            self.offset = point - target.center
        else:  # too wide for the fingers: pinch the rim, elsewhere than where it failed
            point, self.grasp_z, angle = rim_grasp(target, others, HAND_ABOVE_GRIP,
                                                   self.failed_angles)
            self.yaw = angle % np.pi
            self.failed_angles += (angle,)
            self.offset = point - target.center
        self.hang = self.grasp_z - target.bottom
        # Under an overhang (an open drawer), come down beside the grasp and move across
        # just above the object; the lift goes back out the same way.
        self.entry_z = target.top + PAD_BELOW_GRIP + 0.004
        self.entry = side_entry(target.center + self.offset, self.yaw, others, self.entry_z)
        self.entry_stage = 0 if self.entry.any() else 2
        # Travel only as high as what lies under the hand's way: a tall cabinet across the
        # table would otherwise lift the hand out of the arm's reach.
        if self.place_site is not None:  # a free spot of the region, if another stands there
            spot, self.container_top = free_spot(
                self.sim_env, self.place_site, target, self._body_xy(self.target),
                {n: p for n, p in prints.items() if n != self.target})
            # kept relative to the site: a drawer's region moves when the hand bumps the drawer
            self.place_shift = spot - site_frame(self.sim_env, self.place_site)[0][:2]
        grip_xy = site_frame(self.sim_env, "gripper0_grip_site")[0][:2]
        pick_xy, place_xy = target.center + self.offset, self._place_xy() + self.offset
        self.top_pick = path_top(others, grip_xy, pick_xy, target.top)
        self.top_carry = path_top([p for name, p in prints.items()
                                   if name not in (self.target, self.container)],
                                  pick_xy, place_xy, target.bottom)
        if self.place_site is None:
            self.container_top = prints[self.container].top

    def _step(self) -> np.ndarray:
        grip_pos, grip_mat = site_frame(self.sim_env, "gripper0_grip_site")
        target: Footprint = footprints(self.sim_env, self.points, (self.target,))[self.target]
        empty_travel = max(self.top_pick, target.top) + TRAVEL_CLEARANCE
        carry_z = max(self.top_carry, self.container_top) + TRAVEL_CLEARANCE + self.hang
        phase, gripper, speed = self.phase, -1.0, 1.0
        if phase == "rise":  # straight up to a height where nothing is in the way
            goal = np.array([*grip_pos[:2], empty_travel])
            done = grip_pos[2] > empty_travel - 0.02
            if done and self.replan:  # after a failed grasp: plan once the object has settled
                self.replan = False
                self._plan_grasp()
        elif phase == "over":  # over the object (or beside it) at travel height, turned
            beside = self.entry if self.entry_stage == 0 else np.zeros(2)
            goal = np.array([*(target.center + self.offset + beside), empty_travel])
            done = _near(grip_pos, goal, 0.012) and self._yaw_ok(grip_mat)
        elif phase == "descend" and self.entry_stage < 2:  # beside, then across under it
            beside = self.entry if self.entry_stage == 0 else np.zeros(2)
            goal = np.array([*(target.center + self.offset + beside), self.entry_z])
            if _near(grip_pos, goal, 0.01):
                self.entry_stage, self.distances = self.entry_stage + 1, []
            done = False
        elif phase == "descend":
            goal = np.array([*(target.center + self.offset), self.grasp_z])
            speed = 0.5 if grip_pos[2] - self.grasp_z < 0.05 else 1.0
            done = _near(grip_pos, goal, 0.008)
        elif phase == "close":
            goal, gripper = np.array([*(target.center + self.offset), self.grasp_z]), 1.0
            # a thin wall takes the pads longer to reach: lift only once they press on it
            done = self.phase_steps >= CLOSE_STEPS and (
                self._fingers_still() or self.phase_steps >= CLOSE_STEPS_MAX)
            # a held object keeps its distance to the grip point, however it swings about it
            self.hold = float(np.linalg.norm(self._body_pos(self.target) - grip_pos))
        elif phase == "lift" and self.entry.any() and self.entry_stage < 3:
            # out from under the overhang first: back across, just above the grasp height
            if self.phase_steps == 0:
                self.out_to = grip_pos[:2] + self.entry
            goal, gripper = np.array([*self.out_to, self.entry_z + 0.01]), 1.0
            if _near(grip_pos, goal, 0.012) or self.phase_steps > 40:
                self.entry_stage, self.phase_steps = 3, 0
            self.phase_steps += 1
            return self._command(goal, grip_pos, grip_mat, gripper, 0.5)
        elif phase == "lift":
            goal, gripper = np.array([*grip_pos[:2], carry_z]), 1.0
            done = grip_pos[2] > carry_z - 0.02
            speed = LIFT_START_SPEED if grip_pos[2] < self.grasp_z + 0.03 else 1.0
            empty = target.bottom < self.rest_bottom + 0.02
            # came up empty (checked by the end of the lift at the latest): plan anew
            if empty and (done or grip_pos[2] > self.grasp_z + 0.06):
                return self._retry(grip_pos)
        elif phase == "carry":  # the object's body (what LIBERO's goal checks) over the place
            drop = grip_pos[:2] + self._place_xy() - self._body_xy(self.target)
            goal, gripper = np.array([*drop, carry_z]), 1.0
            done = _near(grip_pos, goal, 0.012)
            speed = min(1.0, LIFT_START_SPEED + 0.1 * self.phase_steps)  # no jerk at the start
            if self._dropped(grip_pos):  # dropped on the way: start over
                return self._retry(grip_pos)
        elif phase == "lower":
            z = self.container_top + 0.01 + self.hang
            drop = grip_pos[:2] + self._place_xy() - self._body_xy(self.target)
            goal, gripper = np.array([*drop, z]), 1.0
            done = grip_pos[2] < z + 0.015
        elif phase == "release":
            goal = grip_pos.copy()
            done = self.phase_steps >= OPEN_STEPS
        else:  # "retreat": up and wait for the object to settle
            goal, done = np.array([*grip_pos[:2], carry_z]), False
        # Pressed against something (a pad on a bowl's wall, the arm at its reach), the
        # operational-space controller settles short of the goal: close enough counts.
        self.distances.append(float(np.linalg.norm(goal - grip_pos)))
        # At the edge of its reach, high up, the arm stops a few centimetres short of "over":
        # descending brings the goal back within reach.
        stalled = (phase in ("over", "descend", "carry", "lower")
                   and len(self.distances) > STALL_STEPS
                   and self.distances[-STALL_STEPS - 1] - self.distances[-1] < 0.002
                   and self.distances[-1] < (0.06 if phase == "over" else 0.03))
        self._advance(done or stalled)
        return self._command(goal, grip_pos, grip_mat, gripper, speed)

    def _body_pos(self, name: str) -> np.ndarray:
        sim = self.sim_env.sim
        body = sim.model.body_name2id(self.sim_env.objects_dict[name].root_body)
        return sim.data._data.xpos[body].copy()

    def _body_xy(self, name: str) -> np.ndarray:
        return self._body_pos(name)[:2]

    def _dropped(self, grip_pos: np.ndarray) -> bool:
        return float(np.linalg.norm(self._body_pos(self.target) - grip_pos)) > self.hold + DROP_GAP

    def _place_xy(self) -> np.ndarray:
        """Where the object's body must go: the container's region (``In``) or body (``On``)."""
        if self.place_site is not None:
            return site_frame(self.sim_env, self.place_site)[0][:2] + self.place_shift
        site = self.goal[2]  # "basket_1_contain_region", "desk_caddy_1_back_contain_region"
        if site not in self.sim_env.object_sites_dict:
            site = f"{self.container}_contain_region"
        if site in self.sim_env.object_sites_dict:
            return site_frame(self.sim_env, site)[0][:2]
        return self._body_xy(self.container)

    def _advance(self, done: bool) -> None:
        order = ("rise", "over", "descend", "close", "lift", "carry", "lower", "release",
                 "retreat")
        self.phase_steps += 1
        if (done or self.phase_steps > PHASE_LIMIT) and self.phase != "retreat":
            self.phase = order[order.index(self.phase) + 1]
            self.phase_steps, self.distances = 0, []

    def _retry(self, grip_pos: np.ndarray) -> np.ndarray:
        self.attempts += 1
        self.phase, self.phase_steps, self.distances, self.replan = "rise", 0, [], True
        action = np.zeros(7)
        action[6] = -1.0
        return action

    def _fingers_still(self) -> bool:
        qvel = self.sim_env.sim.data._data.qvel[self.finger_dofs]
        return float(np.abs(qvel).max()) < FINGERS_STILL

    def _yaw_ok(self, grip_mat: np.ndarray) -> bool:
        return float(np.linalg.norm(self._rotation_error(grip_mat))) < 0.08

    def _rotation_error(self, grip_mat: np.ndarray) -> np.ndarray:
        """The turn to the grasp yaw, the shorter way unless that winds the wrist past its limit.

        Pointing down, turning the hand by ``a`` about the vertical turns the last joint by
        about ``-a``; after a place the wrist can sit near its limit (a second pick of LIBERO-10),
        and then the other finger direction, the long way round, is the reachable one.
        """
        u = np.array([np.cos(self.yaw), np.sin(self.yaw), 0.0])
        err = axis_angle_error(grip_frame(u, DOWN, grip_mat), grip_mat)
        wrist = float(self.sim_env.sim.data._data.qpos[self.wrist_dof])
        if abs(wrist - err[2]) > self.wrist_limit - WRIST_MARGIN:
            near = -u if float(grip_mat[:, 0] @ u) < 0.0 else u
            other = axis_angle_error(grip_frame(-near, DOWN, None), grip_mat)
            if abs(wrist - other[2]) < abs(wrist - err[2]):
                return other
        return err

    def _command(self, goal: np.ndarray, grip_pos: np.ndarray, grip_mat: np.ndarray,
                 gripper: float, speed: float, frame: np.ndarray | None = None) -> np.ndarray:
        """The action moving the grip site towards ``goal`` (at most ``speed``).

        The hand turns towards ``frame`` (default: pointing down, fingers along ``self.yaw``).
        """
        action = np.zeros(7)
        move = (goal - grip_pos) / POS_SCALE
        norm = float(np.linalg.norm(move))
        if norm > speed:
            move *= speed / norm
        action[:3] = move
        turn = (self._rotation_error(grip_mat) if frame is None
                else axis_angle_error(frame, grip_mat))
        action[3:6] = np.clip(turn / ROT_SCALE, -0.6, 0.6)
        action[6] = gripper
        return action


def _near(pos: np.ndarray, goal: np.ndarray, tol: float) -> bool:
    return float(np.linalg.norm(pos - goal)) < tol
