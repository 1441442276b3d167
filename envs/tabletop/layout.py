"""Random layouts of the tabletop: zone centres and block poses, drawn by rejection sampling.

Guarantees: zones never overlap (3 cm gap at least); no block starts inside a zone or within
7 cm of another block; block yaw stays within ±10° (sim-notes: blocks rotated further are
grasped by their edges and slip); for push, no distractor lies on the path the target block
travels or behind it where the gripper starts pushing.
"""

from __future__ import annotations

import numpy as np

from envs.tabletop import instructions as ins

BLOCK_HALF = 0.02
"""Half the edge of a block (m)."""
ZONE_HALF = 0.05
"""Half the edge of a zone (m)."""
MAX_YAW = np.deg2rad(10.0)
ZONE_LOW, ZONE_HIGH = np.array([-0.16, -0.13]), np.array([0.16, 0.13])
BLOCK_LOW, BLOCK_HIGH = np.array([-0.17, -0.14]), np.array([0.17, 0.14])
ZONE_GAP = 2 * ZONE_HALF + 0.03
BLOCK_GAP = 0.07
BLOCK_ZONE_GAP = ZONE_HALF + 0.03
PUSH_CLEARANCE = 0.065
"""Distractors keep this distance (m) from the push path of the target block."""


def sample_layout(rng: np.random.Generator, spec: ins.TaskSpec, max_tries: int = 10_000):
    """Draw zone centres and block poses for one episode.

    Args:
        rng: The env's ``np_random``.
        spec: The episode's task spec (push layouts keep the push path clear).
        max_tries: Rejection-sampling budget.

    Returns:
        ``(blocks, zones)``: ``{colour: (x, y, yaw)}`` and ``{colour: (x, y)}``.
    """
    zones = _sample_points(rng, ins.ZONE_COLOURS, ZONE_LOW, ZONE_HIGH, max_tries,
                           lambda p, placed: all(np.max(np.abs(p - q)) >= ZONE_GAP
                                                 for q in placed.values()))
    for _ in range(max_tries):
        blocks = _sample_points(
            rng, ins.BLOCK_COLOURS, BLOCK_LOW, BLOCK_HIGH, max_tries,
            lambda p, placed: all(np.max(np.abs(p - z)) >= BLOCK_ZONE_GAP for z in zones.values())
            and all(np.linalg.norm(p - q) >= BLOCK_GAP for q in placed.values()))
        if spec.task != "push" or _push_path_clear(blocks, zones, spec):
            break
    else:  # pragma: no cover - the budget is orders of magnitude above what is needed
        raise RuntimeError("could not sample a push layout with a clear path")
    yaws = rng.uniform(-MAX_YAW, MAX_YAW, len(blocks))
    return ({c: (*p, float(y)) for (c, p), y in zip(blocks.items(), yaws, strict=True)},
            {c: tuple(p) for c, p in zones.items()})


def _sample_points(rng, names, low, high, max_tries, ok):
    for _ in range(max_tries):
        placed: dict[str, np.ndarray] = {}
        for name in names:
            p = next((p for p in (rng.uniform(low, high) for _ in range(100)) if ok(p, placed)),
                     None)
            if p is None:
                break
            placed[name] = p
        else:
            return placed
    raise RuntimeError(f"could not place {names} without overlaps")  # pragma: no cover


def _push_path_clear(blocks, zones, spec) -> bool:
    start, goal = blocks[spec.block], np.asarray(zones[spec.zone])
    u = (goal - start) / np.linalg.norm(goal - start)
    a = start - 0.07 * u  # where the gripper stands before pushing
    for colour, p in blocks.items():
        if colour != spec.block and _segment_distance(p, a, goal) < PUSH_CLEARANCE:
            return False
    return True


def _segment_distance(p, a, b) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))
