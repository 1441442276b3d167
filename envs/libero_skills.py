"""Non-grasping skills of the LIBERO expert: sliding a flat object, turning a stove's knob.

Usage: ``skill = Slide(sim_env, "plate_1", "main_table_stove_front_region")`` (or
``TurnKnob(sim_env, "flat_stove_1")``), then each step ``goal, yaw, gripper, speed =
skill.step(grip_pos)``; ``envs/libero_expert.py`` turns that into an action.

Both push with the closed fingers pointing down, the finger axis across the push (the two
fingers side by side make a 2 cm wide pusher), after rising to a travel height and descending
behind the contact point. The hand's lowest point is 3 cm above the pads, so it passes over a
plate's rim or a knob while the pads press on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.libero_geometry import (
    fits_between_pads,
    footprints,
    in_subtree,
    object_points,
    path_top,
    site_frame,
)

PAD_HALF = 0.012  # the closed pads' half-thickness along the push, plus margin
RIM_INSIDE = 0.012  # a plate rim's width: the pads press on its inner wall
PRESS = 0.008  # a sliding grip aims this far below where the pads meet the plate
PUSH_LEAD = 0.04  # the goal runs this far ahead of the contact point while pushing
SLIDE_TOL = 0.012  # a slid object's centre this close to the region's: done
LOST_CONTACT = 0.035  # the pads this far from where they should push: approach again
TRAVEL_CLEARANCE = 0.05
TURN_ON_MARGIN = 0.25  # radians past the knob's "on" threshold to aim for


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0])


class _Push:
    """The approach-then-push loop shared by the skills.

    Phases: rise, over, descend, push, retreat. Subclasses give the contact point, the push
    direction and the pads' height (``contact``) and say when the goal holds (``finished``).
    """

    def __init__(self, sim_env: Any, moving: str):
        self.sim_env, self.moving = sim_env, moving
        self.points = object_points(sim_env)
        self.phase, self.phase_steps = "rise", 0

    def contact(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The pads' place (x, y: against the part to push), push direction and grip height."""
        raise NotImplementedError

    def finished(self) -> bool:
        """Whether the goal of the push holds."""
        raise NotImplementedError

    def step(self, grip_pos: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """The next waypoint: ``(goal xyz, finger-axis yaw, gripper command, speed)``."""
        point, direction, z = self.contact()
        yaw = float(np.arctan2(direction[1], direction[0]) + np.pi / 2)
        start = point - direction * 0.03  # a little behind the contact: descend clear of it
        prints = footprints(self.sim_env, self.points)
        travel = path_top(list(prints.values()), grip_pos[:2], start, z) + TRAVEL_CLEARANCE
        self.phase_steps += 1
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
            return goal, yaw, 1.0, 0.5
        else:  # retreat: straight up, out of the way
            return np.array([*grip_pos[:2], z + 0.1]), yaw, 1.0, 1.0
        if done or self.phase_steps > 90:
            order = ("rise", "over", "descend", "push")
            self.phase, self.phase_steps = order[order.index(self.phase) + 1], 0
        return goal, yaw, 1.0, 1.0


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
    """Turn a stove's knob on: push the knob's outermost raised part around its hinge.

    Args:
        sim_env: LIBERO's robosuite env.
        fixture: The stove (a key of ``fixtures_dict`` with a ``turn_on`` test).
    """

    def __init__(self, sim_env: Any, fixture: str):
        super().__init__(sim_env, fixture)
        self.fixture = sim_env.fixtures_dict[fixture]
        model = sim_env.sim.model._model
        self.joint = sim_env.sim.model.joint_name2id(self.fixture.joints[0])
        self.qpos_at = model.jnt_qposadr[self.joint]
        body = model.jnt_bodyid[self.joint]
        self.knob = [(g, local) for g, local in self.points[fixture]
                     if in_subtree(model, model.geom_bodyid[g], body)]
        on = self.fixture.object_properties["articulation"]["default_turnon_ranges"]
        self.target = min(on) + TURN_ON_MARGIN

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
        direction = _unit(np.sign(axis[2]) * np.array([-r[1], r[0]]))  # increases the angle
        return far[:2] - direction * PAD_HALF, direction, top - 0.01

    def finished(self) -> bool:
        """Whether the hinge turned past the "on" threshold (plus a margin)."""
        return float(self.sim_env.sim.data._data.qpos[self.qpos_at]) >= self.target



def skill_for(sim_env: Any) -> _Push | None:
    """The skill that reaches the task's BDDL goal without a grasp, or ``None`` (pick and place).

    ``Turnon`` of a fixture turns its knob; ``On`` of a flat object too wide for the fingers
    (a plate: lower than 3 cm) on a region of the table slides it there.
    """
    kind, *args = sim_env.parsed_problem["goal_state"][0]
    if kind == "turnon":
        return TurnKnob(sim_env, args[0])
    if kind == "on" and args[0] in sim_env.objects_dict and args[1].startswith("main_table_"):
        fp = footprints(sim_env, object_points(sim_env), (args[0],))[args[0]]
        if fp.height < 0.03 and not fits_between_pads(fp):
            return Slide(sim_env, args[0], args[1])
    return None
