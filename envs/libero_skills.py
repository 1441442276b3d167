"""Skills of the LIBERO expert beyond pick and place: slide a plate, turn a knob, open a drawer.

Usage: ``skill = skill_for(sim_env)`` (the skill the task's BDDL goal needs, or ``None`` for a
pick and place), then each step ``goal, frame, gripper, speed = skill.step(grip_pos,
grip_mat)``; ``envs/libero_expert.py`` turns that into an action.

``Slide`` and ``TurnKnob`` push with the closed fingers pointing down, the finger axis across
the push (the two fingers side by side make a 2 cm wide pusher), after rising to a travel
height and descending beside the contact point. The hand's lowest point is 3 cm above the
pads, so it passes over a plate's rim or a knob while the pads press on them. ``OpenDrawer``
turns the hand sideways to grasp the handle and pulls along the drawer's joint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from envs.libero_geometry import (
    DOWN,
    axis_angle_error,
    footprints,
    grip_frame,
    in_subtree,
    object_points,
    path_top,
    region_owner,
    site_frame,
)
from envs.libero_grasps import fits_between_pads

PAD_HALF = 0.012  # the closed pads' half-thickness along the push, plus margin
RIM_INSIDE = 0.012  # a plate rim's width: the pads press on its inner wall
PRESS = 0.008  # a sliding grip aims this far below where the pads meet the plate
PUSH_LEAD = 0.04  # the goal runs this far ahead of the contact point while pushing
SLIDE_TOL = 0.012  # a slid object's centre this close to the region's: done
LOST_CONTACT = 0.035  # the pads this far from where they should push: approach again
TRAVEL_CLEARANCE = 0.05
TURN_ON_MARGIN = 0.25  # radians past the knob's "on" threshold to aim for
HANDLE_DEPTH = 0.016  # a drawer handle's bar, front to back


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0])


class _Push(ABC):
    """The approach-then-push loop shared by the skills.

    Phases: rise, over, descend, push, retreat. Subclasses give the contact point, the push
    direction and the pads' height (``contact``) and say when the goal holds (``finished``).
    """

    def __init__(self, sim_env: Any, moving: str):
        self.sim_env, self.moving = sim_env, moving
        self.points = object_points(sim_env)
        self.phase, self.phase_steps = "rise", 0

    @abstractmethod
    def contact(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The pads' place (x, y: against the part to push), push direction and grip height."""

    @abstractmethod
    def finished(self) -> bool:
        """Whether the goal of the push holds."""

    def step(self, grip_pos: np.ndarray, grip_mat: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The next waypoint: ``(goal xyz, hand rotation, gripper command, speed)``."""
        point, direction, z = self.contact()
        across = np.array([-direction[1], direction[0], 0.0])  # the finger axis
        frame = grip_frame(across, DOWN, grip_mat)
        start = point - direction * 0.03  # a little behind the contact: descend clear of it
        self.phase_steps += 1
        if self.phase in ("rise", "over"):  # the travel height: only these phases need it
            prints = footprints(self.sim_env, self.points)
            travel = path_top(list(prints.values()), grip_pos[:2], start, z) + TRAVEL_CLEARANCE
        if self.phase == "rise":
            goal, done = np.array([*grip_pos[:2], travel]), grip_pos[2] > travel - 0.02
        elif self.phase == "over":
            goal = np.array([*start, travel])
            done = float(np.linalg.norm(goal - grip_pos)) < 0.012
        elif self.phase == "descend":  # (a goal pressed into a surface is never reached)
            goal = np.array([*start, z])
            done = (float(np.linalg.norm(goal[:2] - grip_pos[:2])) < 0.008
                    and grip_pos[2] < z + PRESS + 0.006)
        elif self.phase == "push":
            goal = np.array([*(point + direction * PUSH_LEAD), z])
            lost = float(np.linalg.norm(grip_pos[:2] - point))
            if self.finished():
                self.phase, self.phase_steps = "retreat", 0
            elif lost > LOST_CONTACT and self.phase_steps > 5:
                self.phase, self.phase_steps = "rise", 0
            return goal, frame, 1.0, 0.5
        else:  # retreat: straight up, out of the way
            return np.array([*grip_pos[:2], z + 0.1]), frame, 1.0, 1.0
        if done or self.phase_steps > 90:
            order = ("rise", "over", "descend", "push")
            self.phase, self.phase_steps = order[order.index(self.phase) + 1], 0
        return goal, frame, 1.0, 1.0


class Slide(_Push):
    """Push a flat object (a plate) across the table until its centre is on a region's.

    Args:
        sim_env: LIBERO's robosuite env.
        moving: The object to slide (a key of ``objects_dict``).
        region: The site it must end on (``"main_table_stove_front_region"``).
    """

    def __init__(self, sim_env: Any, moving: str, region: str):
        super().__init__(sim_env, moving)
        self.region = region

    def _centre(self) -> tuple[np.ndarray, Any]:
        fp = footprints(self.sim_env, self.points, (self.moving,))[self.moving]
        sim = self.sim_env.sim
        body = sim.model.body_name2id(self.sim_env.objects_dict[self.moving].root_body)
        return sim.data._data.xpos[body][:2].copy(), fp

    def contact(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Against the inside of the rim on the region's side, pressed on the floor."""
        centre, fp = self._centre()
        direction = _unit(site_frame(self.sim_env, self.region)[0][:2] - centre)
        # The pads drag it by the inside of its rim on the goal's side: pushing from behind
        # would put the hand where the plate came from, into whatever stands there.
        reach = float(((fp.points[:, :2] - centre) @ direction).max())
        z = fp.bottom + 0.012 - PRESS  # the pads pressed on the plate's floor, under its rim
        return centre + direction * (reach - RIM_INSIDE - PAD_HALF), direction, z

    def finished(self) -> bool:
        """Whether the object's centre is on the region's."""
        centre, _ = self._centre()
        goal = site_frame(self.sim_env, self.region)[0][:2]
        return float(np.linalg.norm(goal - centre)) < SLIDE_TOL


class TurnKnob(_Push):
    """Turn a stove's knob on (or off): push its outermost raised part around its hinge.

    Args:
        sim_env: LIBERO's robosuite env.
        fixture: The stove (a key of ``fixtures_dict`` with a ``turn_on`` test).
        on: Turn it on (past the "on" range's start, plus a margin) or off (below the "off"
            range's end, LIBERO's ``Turnoff``).
    """

    def __init__(self, sim_env: Any, fixture: str, on: bool = True):
        super().__init__(sim_env, fixture)
        self.fixture = sim_env.fixtures_dict[fixture]
        model = sim_env.sim.model._model
        self.joint = sim_env.sim.model.joint_name2id(self.fixture.joints[0])
        self.qpos_at = model.jnt_qposadr[self.joint]
        body = model.jnt_bodyid[self.joint]
        self.knob = [(g, local) for g, local in self.points[fixture]
                     if in_subtree(model, model.geom_bodyid[g], body)]
        art = self.fixture.object_properties["articulation"]
        self.turn = 1.0 if on else -1.0  # the direction the hinge angle must go
        self.target = (min(art["default_turnon_ranges"]) + TURN_ON_MARGIN if on
                       else max(art["default_turnoff_ranges"]) - 0.002)

    def contact(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Behind the knob's raised part farthest from the hinge, pushing it around."""
        data = self.sim_env.sim.data._data
        axis, anchor = data.xaxis[self.joint], data.xanchor[self.joint]
        world = np.concatenate([local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g]
                                for g, local in self.knob])
        top = float(world[:, 2].max())
        raised = world[world[:, 2] > top - 0.015]  # the knob's grip, not its flat base
        radial = raised[:, :2] - anchor[:2]
        far = raised[int(np.argmax(np.linalg.norm(radial, axis=1)))]
        r = far[:2] - anchor[:2]
        direction = _unit(self.turn * np.sign(axis[2]) * np.array([-r[1], r[0]]))
        return far[:2] - direction * PAD_HALF, direction, top - 0.01

    def finished(self) -> bool:
        """Whether the hinge turned past the target angle."""
        qpos = float(self.sim_env.sim.data._data.qpos[self.qpos_at])
        return self.turn * (qpos - self.target) >= 0.0




class OpenDrawer:
    """Pull a drawer open by its handle, the hand turned sideways.

    The hand points at the drawer's front, fingers vertical, the pads closing above and below
    the handle's bar (pointing down, the 21 cm long hand would hit the cabinet's face or the
    drawer above). Phases: rise, over (turning), front (10 cm before the handle), reach,
    close, pull (until the joint is past the middle of its "open" range), release, back, up;
    then ``done``. A handle that slips out of the pads is grasped again.

    Args:
        sim_env: LIBERO's robosuite env.
        region: The drawer's BDDL region (``"wooden_cabinet_1_top_region"``), a site on the
            drawer's body; the body slides on the joint the region's ``Open`` test reads.

    Raises:
        ValueError: If the region's body has no slide joint.
    """

    def __init__(self, sim_env: Any, region: str):
        self.sim_env = sim_env
        model = sim_env.sim.model._model
        body = model.site_bodyid[sim_env.sim.model.site_name2id(region)]
        joints = [j for j in range(model.njnt)
                  if model.jnt_bodyid[j] == body and model.jnt_type[j] == 2]  # mjJNT_SLIDE
        if not joints:
            raise ValueError(f"{region!r} is not on a drawer (no slide joint)")
        self.joint, self.qpos_at = joints[0], model.jnt_qposadr[joints[0]]
        owner = region_owner(sim_env, region)
        things = {**sim_env.fixtures_dict, **sim_env.objects_dict}
        art = things[owner].object_properties["articulation"]
        opened, closed = np.mean(art["default_open_ranges"]), np.mean(art["default_close_ranges"])
        self.sign, self.opened = float(np.sign(opened - closed)), float(opened)
        self.points = object_points(sim_env)  # local geometry: read once
        self.drawer = [(g, local) for g, local in self.points[owner]
                       if in_subtree(model, model.geom_bodyid[g], body)]
        self.phase, self.phase_steps, self.done = "rise", 0, False

    def is_open(self) -> bool:
        """Whether the joint is past the middle of the drawer's "open" range."""
        qpos = float(self.sim_env.sim.data._data.qpos[self.qpos_at])
        return self.sign * (qpos - self.opened) >= 0.0

    def _handle(self) -> tuple[np.ndarray, np.ndarray]:
        """The handle bar's centre (the drawer's most protruding part) and the pull direction."""
        data = self.sim_env.sim.data._data
        pull = data.xaxis[self.joint] * self.sign
        pull = np.array([pull[0], pull[1], 0.0]) / max(np.linalg.norm(pull[:2]), 1e-9)
        world = np.concatenate([local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g]
                                for g, local in self.drawer])
        depth = world @ pull
        bar = world[depth > depth.max() - HANDLE_DEPTH]
        centre = bar.mean(axis=0)
        centre += pull * (depth.max() - HANDLE_DEPTH / 2 - centre @ pull)
        return centre, pull

    def step(self, grip_pos: np.ndarray, grip_mat: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The next waypoint: ``(goal xyz, hand rotation, gripper command, speed)``."""
        handle, pull = self._handle()
        # fingers vertical; the wrist turned one way (the other is beyond its joint's limit)
        frame = grip_frame(np.array([0.0, 0.0, -1.0]), -pull, None)
        front = handle + pull * 0.10
        if self.phase in ("rise", "over"):  # the travel height: only these phases need it
            prints = footprints(self.sim_env, self.points)
            travel = max(path_top(list(prints.values()), grip_pos[:2], front[:2], front[2]),
                         front[2]) + TRAVEL_CLEARANCE
        turned = float(np.linalg.norm(axis_angle_error(frame, grip_mat))) < 0.1
        gripper, speed, self.phase_steps = -1.0, 1.0, self.phase_steps + 1
        phase = self.phase
        if phase == "rise":
            goal, done = np.array([*grip_pos[:2], travel]), grip_pos[2] > travel - 0.02
        elif phase == "over":  # (roughly: "front" finishes the move and the turn)
            goal = np.array([*front[:2], travel])
            done = float(np.linalg.norm(goal - grip_pos)) < 0.04
        elif phase == "front":
            goal, done = front, float(np.linalg.norm(front - grip_pos)) < 0.01 and turned
        elif phase == "reach":
            # deep enough matters; a centimetre high is fine (the pads open 8 cm around a
            # 1.6 cm bar), and an object under the hand can hold it that high
            goal, speed = handle, 0.8
            done = (abs(float((handle - grip_pos) @ pull)) < 0.005
                    and float(np.linalg.norm(handle - grip_pos)) < 0.015)
        elif phase == "close":
            goal, gripper, done = handle, 1.0, self.phase_steps >= 10
        elif phase == "pull":
            goal, gripper, speed = handle + pull * 0.05, 1.0, 0.8
            done = self.is_open()
            if float(np.linalg.norm(handle - grip_pos)) > 0.03:  # slipped off: grasp again
                self.phase, self.phase_steps = "front", 0
                return front, frame, -1.0, 1.0
        elif phase == "release":
            goal, done = grip_pos.copy(), self.phase_steps >= 6
        elif phase == "back":
            goal = handle + pull * 0.08
            done = float(np.linalg.norm(goal - grip_pos)) < 0.015
        else:  # "up": pointing down again, a little higher and nearer the robot, then done
            # (pulling stretched the arm: its elbow is straight, where it moves badly)
            base = self.sim_env.sim.data.get_body_xpos("robot0_base")
            inward = _unit(base[:2] - grip_pos[:2])
            goal = np.array([*(self.back_from[:2] + inward * 0.08), handle[2] + 0.06])
            frame = grip_frame(np.array([-pull[1], pull[0], 0.0]), DOWN, None)
            # near enough, and turned most of the way: the next skill finishes the turn
            self.done = (float(np.linalg.norm(goal - grip_pos)) < 0.04
                         and float(np.linalg.norm(axis_angle_error(frame, grip_mat))) < 0.3)
            return goal, frame, -1.0, 1.0
        if phase == "back" and (done or self.phase_steps > 90):
            self.back_from = grip_pos.copy()
        if done or self.phase_steps > 90:
            order = ("rise", "over", "front", "reach", "close", "pull", "release", "back", "up")
            self.phase, self.phase_steps = order[order.index(phase) + 1], 0
        return goal, frame, gripper, speed

SUPPORTED_GOALS = ("on", "in", "open", "turnon", "turnoff")
"""BDDL goal predicates the expert reaches (each predicate of a task's goal)."""


def checked_goals(goal_state: list[list[str]]) -> list[list[str]]:
    """The task's goal predicates in the order the expert works through them (BDDL's).

    Raises:
        ValueError: If a predicate is none of ``SUPPORTED_GOALS``.
    """
    for kind, *_ in goal_state:
        if kind not in SUPPORTED_GOALS:
            raise ValueError(f"the LIBERO expert cannot reach a {kind!r} goal ({goal_state}); "
                             f"it reaches {list(SUPPORTED_GOALS)}")
    return [list(g) for g in goal_state]


def skill_for(sim_env: Any, goal: list[str] | None = None) -> _Push | OpenDrawer | None:
    """The skill that reaches a BDDL goal predicate without a grasp, or ``None`` (pick and place).

    ``Turnon`` / ``Turnoff`` of a fixture turns its knob; ``Open`` pulls a drawer open, and so
    does ``In`` a closed drawer (the pick and place follows); ``On`` of a flat object too wide
    for the fingers (a plate: lower than 3 cm) on a region of the table slides it there.

    Args:
        sim_env: LIBERO's robosuite env.
        goal: One predicate of the task's goal (default: the first).

    Raises:
        ValueError: If the goal's predicate is none of ``SUPPORTED_GOALS``.
    """
    goal_state = sim_env.parsed_problem["goal_state"]
    kind, *args = checked_goals([goal if goal is not None else goal_state[0]])[0]
    if kind in ("turnon", "turnoff"):
        return TurnKnob(sim_env, args[0], on=kind == "turnon")
    if kind == "open":
        return OpenDrawer(sim_env, args[0])
    if kind == "in" and _on_drawer(sim_env, args[1]):
        drawer = OpenDrawer(sim_env, args[1])
        return None if drawer.is_open() else drawer
    if kind == "on" and args[0] in sim_env.objects_dict and args[1].startswith("main_table_"):
        fp = footprints(sim_env, object_points(sim_env), (args[0],))[args[0]]
        if fp.height < 0.03 and not fits_between_pads(fp):
            return Slide(sim_env, args[0], args[1])
    return None


def _on_drawer(sim_env: Any, region: str) -> bool:
    """Whether BDDL region ``region`` is a site on a sliding body (a drawer)."""
    if region not in sim_env.object_sites_dict:
        return False
    model = sim_env.sim.model._model
    body = model.site_bodyid[sim_env.sim.model.site_name2id(region)]
    return any(model.jnt_bodyid[j] == body and model.jnt_type[j] == 2 for j in range(model.njnt))
