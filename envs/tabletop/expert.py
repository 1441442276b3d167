"""Scripted experts for the tabletop tasks, acting on privileged simulator state.

Usage: ``expert = envs.make_expert(env, noise=0.1, seed=0); action = expert.act(obs)``.

Each task is a small state machine re-checked every step, so the expert recovers on its own:
a block that slips out of the grip sends pick-and-place back to re-grasping, and a block that
drifts off the push line makes push walk around and line up again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.tabletop.env import MOVE_SCALE, TabletopEnv

HOVER_Z = 0.09  # grip height for travelling above blocks (pads clear 4 cm blocks)
CARRY_Z = 0.11  # grip height while carrying a block
GRASP_Z = 0.02  # grip height that centres the pads on a block
PUSH_Z = 0.02  # grip height while pushing
PUSH_BACKOFF = 0.05  # where the closed jaw stands behind a block before pushing (m)
OPEN, CLOSED = 1.0, -1.0


class TabletopExpert:
    """Scripted policy for ``TabletopEnv`` (every task, including the multi-task id).

    Args:
        env: The env (wrapped or not); the expert reads its privileged state.
        noise: Standard deviation of Gaussian noise added to every action dimension (in action
            units, before clipping), for diverse demonstrations.
        seed: Seed of the noise generator.
    """

    def __init__(self, env: Any, noise: float = 0.0, seed: int | None = None):
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, TabletopEnv):
            raise ValueError(f"env must be a TabletopEnv, got {type(base).__name__}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        self.env, self.noise = base, float(noise)
        self.target: tuple[str, str] | None = None
        """``(block, zone)`` pick-and-place goal overriding the env's task (``None``: the
        env's), e.g. the current step of a plan in ``TabletopRearrange-v0``."""
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the phase of the previous episode (call after ``env.reset``)."""
        self.phase = "start"
        self._phase_steps = 0
        self._lost_steps = 0
        self._episode_step = -1

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the next action (float32, shape (4,)) for the env's current state."""
        env = self.env
        if env.task_spec is None:
            raise RuntimeError("reset the env before asking the expert to act")
        if env.elapsed_steps <= self._episode_step or self._episode_step < 0:
            self.reset()  # a new episode started without an explicit reset()
        self._episode_step = env.elapsed_steps
        task = "pickplace" if self.target is not None else env.task_spec.task
        goal, jaw, speed = getattr(self, f"_{task}")()
        action = np.append(self._move(goal, speed), jaw)
        if self.noise > 0:
            action = action + self._rng.normal(0.0, self.noise, 4)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ helpers
    def _move(self, goal: np.ndarray, speed: float) -> np.ndarray:
        """Action moving the hand target towards ``goal``, at most ``speed`` per axis."""
        delta = (goal - self.env.hand_target) / MOVE_SCALE
        peak = np.max(np.abs(delta))
        return delta * (speed / peak) if peak > speed else delta

    def _set(self, phase: str) -> None:
        if phase != self.phase:
            self.phase, self._phase_steps = phase, 0
        else:
            self._phase_steps += 1

    # ------------------------------------------------------------------ tasks
    def _reach(self):
        return self.env.reach_target(), OPEN, 1.0

    def _pickplace(self):
        env = self.env
        block, zone = self.target or (env.task_spec.block, env.task_spec.zone)
        g, b, z = env.grip_pos, env.block_pos(block), env.zone_pos(zone)
        held = env.is_grasped(block)
        self._lost_steps = 0 if held else self._lost_steps + 1
        phase = self.phase
        if phase in ("lift", "carry", "lower") and self._lost_steps >= 3:
            phase = "approach"  # the block slipped: go back and grasp it again
        if phase == "start":
            phase = "approach"
        xy_err = np.linalg.norm(g[:2] - b[:2])
        if phase == "approach":
            if xy_err < 0.008:
                phase = "descend"
        elif phase == "descend":
            if xy_err > 0.015:
                phase = "approach"
            elif g[2] < GRASP_Z + 0.006:
                phase = "close"
        elif phase == "close":
            if held and self._phase_steps >= 4:
                phase = "lift"
            elif self._phase_steps >= 15:
                phase = "approach"
        elif phase == "lift" and g[2] > CARRY_Z - 0.01:
            phase = "carry"
        elif phase == "carry" and np.linalg.norm(b[:2] - z[:2]) < 0.006:
            phase = "lower"
        elif phase == "lower" and b[2] < 0.027:
            phase = "release"
        elif phase == "release" and self._phase_steps >= 8 and not env.in_zone(block, zone):
            phase = "approach"  # it landed outside the zone: pick it up again
        self._set(phase)

        if phase == "approach":
            far = xy_err > 0.02
            if far and g[2] < HOVER_Z - 0.015:  # climb before travelling sideways
                return np.array([g[0], g[1], HOVER_Z]), OPEN, 1.0
            return np.array([b[0], b[1], HOVER_Z]), OPEN, 1.0
        if phase == "descend":
            return np.array([b[0], b[1], GRASP_Z]), OPEN, 0.8
        if phase == "close":
            return np.array([b[0], b[1], GRASP_Z]), CLOSED, 0.3
        if phase == "lift":
            return np.array([g[0], g[1], CARRY_Z]), CLOSED, 0.7
        offset = g[:2] - b[:2]  # keep the block, not the grip point, over the zone centre
        if phase == "carry":
            return np.array([*(z[:2] + offset), CARRY_Z]), CLOSED, 0.7
        if phase == "lower":
            return np.array([*(z[:2] + offset), 0.0]), CLOSED, 0.6
        # release: open the jaw in place, then back off upwards once the fingers are clear
        rise = 0.02 if self._phase_steps > 3 else 0.0
        return np.array([g[0], g[1], g[2] + rise]), OPEN, 0.5

    def _push(self):
        env, spec = self.env, self.env.task_spec
        g, b, z = env.grip_pos, env.block_pos(spec.block), env.zone_pos(spec.zone)
        d = z[:2] - b[:2]
        u = d / max(np.linalg.norm(d), 1e-6)
        rel = g[:2] - b[:2]
        along, lateral = float(rel @ u), float(rel @ np.array([-u[1], u[0]]))
        behind = b[:2] - PUSH_BACKOFF * u
        phase = "reposition" if self.phase == "start" else self.phase
        if phase == "push":
            if abs(lateral) > 0.018 or not -0.07 < along < -0.015 or g[2] > PUSH_Z + 0.02:
                phase = "reposition"
        elif phase == "reposition":
            if np.linalg.norm(g[:2] - behind) < 0.008:
                phase = "lower"
        elif phase == "lower":  # give up and line up again if blocked on the way down
            if np.linalg.norm(g[:2] - behind) > 0.015 or self._phase_steps > 15:
                phase = "reposition"
            elif g[2] < PUSH_Z + 0.006:
                phase = "push"
        self._set(phase)

        if phase == "push":
            ahead = b[:2] + 0.02 * u  # aim through the block centre along the push line
            return np.array([*ahead, PUSH_Z]), CLOSED, 0.5
        if phase == "lower":
            return np.array([*behind, PUSH_Z]), CLOSED, 0.8
        travel_z = 0.07
        if g[2] < travel_z - 0.015 and np.linalg.norm(g[:2] - behind) > 0.015:
            return np.array([g[0], g[1], travel_z]), CLOSED, 1.0  # climb over the block first
        return np.array([*behind, travel_z]), CLOSED, 1.0
