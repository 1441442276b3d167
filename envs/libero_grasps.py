"""Where and how the LIBERO expert grasps an object (``envs/libero_expert.py``).

Usage: ``yaw = grasp_yaw(prints[target], others, hand_bottom, grasp_z)`` for an object that fits
between the pads (``fits_between_pads``); ``rim_grasp`` for a wide open one (a bowl),
``part_grasp`` for a wide closed one (a moka pot, by its lid knob); ``side_entry`` for a grasp
under an overhang. Footprints come from ``envs/libero_geometry.py``.
"""

from __future__ import annotations

import numpy as np

from envs.libero_geometry import HAND_HALF_LENGTH, HAND_HALF_WIDTH, Footprint

PAD_OFFSET = 0.042  # finger pad centres from the grip site when open
MAX_GRASP_WIDTH = 0.066  # object span between the pads that still leaves room to descend
STRIP_HALF_WIDTH = 0.010  # the pads' half-width across the finger axis, plus margin
CLEARANCE_ENOUGH = 0.03  # hand clearance beyond which a yaw is not preferred for it
RIM_INSET = 0.006  # the pinch point inside a bowl wall's outer radius (about half the wall)
RIM_DEPTHS = (0.02, 0.016, 0.012)  # grip-site depths below a rim to try (deepest first)
HAND_TOP = 0.090  # the hand's top above the grip site; the wrist and arm rise from there
WRIST_RADIUS = 0.05  # the wrist's reach around the grip site, seen from above


def span_along(target: Footprint, yaw: float) -> float:
    """The object's extent along the finger axis ``yaw``, within the pads' strip."""
    u = np.array([np.cos(yaw), np.sin(yaw)])
    v = np.array([-u[1], u[0]])
    rel = target.points[:, :2] - target.center
    strip = rel[np.abs(rel @ v) <= STRIP_HALF_WIDTH]
    if len(strip) == 0:
        strip = rel
    along = strip @ u
    return float(along.max() - along.min())


def hand_clearance(center: np.ndarray, others: list[Footprint], yaw: float,
                   hand_bottom: float, grasp_z: float) -> float:
    """Smallest distance from the open hand and pads at grasp height to a neighbour in reach.

    The hand (a rectangle along the finger axis) meets neighbours taller than its lowest point
    ``hand_bottom``; the open pads meet those taller than the grasp height ``grasp_z``.
    """
    u = np.array([np.cos(yaw), np.sin(yaw)])
    v = np.array([-u[1], u[0]])
    best = np.inf
    for other in others:
        pts = other.points
        if other.top > hand_bottom:
            tall = pts[pts[:, 2] > hand_bottom][:, :2] - center
            best = min(best, _rect_distance(tall @ u, tall @ v, HAND_HALF_LENGTH,
                                            HAND_HALF_WIDTH))
        if other.top > grasp_z:
            low = pts[pts[:, 2] > grasp_z][:, :2] - center
            for side in (-1.0, 1.0):
                best = min(best, _rect_distance(low @ u - side * PAD_OFFSET, low @ v,
                                                0.006, 0.010))
    return float(best)


def grasp_yaw(target: Footprint, others: list[Footprint], hand_bottom: float,
              grasp_z: float) -> float:
    """The finger-axis yaw in [0, pi) to grasp ``target`` with, avoiding ``others``.

    Among yaws every 5 degrees whose span fits between the pads, prefer clearance up to
    ``CLEARANCE_ENOUGH``, then the narrowest span (the firmest grasp); with no yaw that fits,
    the narrowest span.
    """
    yaws = np.deg2rad(np.arange(0.0, 180.0, 5.0))
    spans = np.array([span_along(target, y) for y in yaws])
    fits = spans <= MAX_GRASP_WIDTH
    if not fits.any():
        return float(yaws[int(np.argmin(spans))])
    clear = np.array([hand_clearance(target.center, others, y, hand_bottom, grasp_z)
                      for y in yaws])
    score = np.minimum(clear, CLEARANCE_ENOUGH) - 0.5 * (spans - spans[fits].min())
    score[~fits] = -np.inf
    return float(yaws[int(np.argmax(score))])


def fits_between_pads(target: Footprint) -> bool:
    """Whether some finger-axis yaw spans ``target`` narrowly enough to grasp it whole."""
    return min(span_along(target, y) for y in np.deg2rad(np.arange(0.0, 180.0, 5.0))) <= (
        MAX_GRASP_WIDTH)


def rim_grasp(target: Footprint, others: list[Footprint], hand_above: float,
              avoid: tuple[float, ...] = ()) -> tuple[np.ndarray, float, float]:
    """Where, how deep and at which yaw to pinch the rim of a wide open object (a bowl).

    The fingers straddle the wall with the finger axis radial. Of the rim points every 15
    degrees and grip depths below the rim of ``RIM_DEPTHS``, the one whose hand and pads keep
    the most clearance from ``others`` wins (ties: the deeper grip); rim angles within 20
    degrees of one in ``avoid`` (where a grasp already failed) are skipped, and so are rim
    points with something of ``others`` hanging over the wrist (within ``WRIST_RADIUS``,
    higher than the hand's top above the rim: an open drawer above the bowl), unless every
    point has; equal scores go to the point with more room for the wrist.

    Returns:
        ``(grasp point (x, y), grip-site height, rim angle in radians)``; the finger-axis yaw
        is the rim angle.
    """
    radial = np.linalg.norm(target.points[:, :2] - target.center, axis=1)
    pts = np.concatenate([o.points for o in others]) if others else np.zeros((0, 3))
    overhead = pts[pts[:, 2] > target.top + HAND_TOP][:, :2]
    rim = float(radial.max())

    def wrist_room(phi: float) -> float:  # horizontal distance to what is over the wrist
        at = target.center + rim * np.array([np.cos(phi), np.sin(phi)])
        return float(np.linalg.norm(overhead - at, axis=1).min()) if len(overhead) else np.inf

    angles = np.deg2rad(np.arange(0.0, 360.0, 15.0))
    free = [phi for phi in angles if wrist_room(phi) >= WRIST_RADIUS]
    best, best_score = None, -np.inf
    for phi in free or angles:
        if any(abs((phi - a + np.pi) % (2 * np.pi) - np.pi) < np.deg2rad(20) for a in avoid):
            continue
        for k, depth in enumerate(RIM_DEPTHS):
            z = target.top - depth
            # the wall's outer radius where the pads will close (a bowl narrows downwards)
            band = radial[np.abs(target.points[:, 2] - (z + 0.003)) < 0.008]
            radius = float((band if len(band) else radial).max()) - RIM_INSET
            point = target.center + radius * np.array([np.cos(phi), np.sin(phi)])
            clear = hand_clearance(point, others, phi, z + hand_above, z - 0.005)
            # ties (common: clearance is capped) go to more room for the wrist
            score = (min(clear, CLEARANCE_ENOUGH) - 0.001 * k
                     + 0.001 * min(wrist_room(phi), 2 * WRIST_RADIUS))
            if score > best_score:
                best, best_score = (point, z, float(phi)), score
    if best is None:  # every angle already failed: start over
        return rim_grasp(target, others, hand_above)
    return best


def is_open_container(target: Footprint) -> bool:
    """Whether ``target`` is open at the top (a bowl): low in the middle, its rim to pinch."""
    middle = np.linalg.norm(target.points[:, :2] - target.center, axis=1) < 0.015
    return not middle.any() or float(target.points[middle, 2].max()) < (
        target.bottom + 0.5 * target.height)


def part_grasp(target: Footprint, others: list[Footprint], hand_above: float
               ) -> tuple[np.ndarray, float, float] | None:
    """Where, how high and at which yaw to grasp a narrow part of a closed object (a knob).

    For objects too wide to grasp whole that are no bowl (a moka pot): of grasp points every
    centimetre over the object and yaws every 15 degrees, those where the hand comes down just
    above whatever of the object is under it, the pads close on 0.8 cm to ``MAX_GRASP_WIDTH``
    of it, centred, and the open fingers meet nothing of it; the nearest to the object's
    centre (the least torque when lifted) with the most clearance from ``others`` wins.

    Returns:
        ``(grasp point (x, y), grip-site height, finger-axis yaw)``, or ``None``.
    """
    pts = target.points
    lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
    xs, ys = (np.arange(a, b + 1e-9, 0.01) for a, b in zip(lo, hi, strict=True))
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    best, best_score = None, -np.inf
    for yaw in np.deg2rad(np.arange(0.0, 180.0, 15.0)):
        u = np.array([np.cos(yaw), np.sin(yaw)])
        v = np.array([-u[1], u[0]])
        for c in grid:
            rel = pts[:, :2] - c
            a, b = rel @ u, rel @ v
            under = (np.abs(a) <= HAND_HALF_LENGTH) & (np.abs(b) <= HAND_HALF_WIDTH)
            if not under.any():
                continue
            z = float(pts[under, 2].max()) - hand_above + 0.008
            grip = (np.abs(b) <= STRIP_HALF_WIDTH) & (np.abs(a) <= PAD_OFFSET) & (
                np.abs(pts[:, 2] - z) <= 0.01)
            if grip.sum() < 3:
                continue
            span = float(a[grip].max() - a[grip].min())
            mid = float(a[grip].max() + a[grip].min()) / 2.0
            fingers = (np.abs(b) <= STRIP_HALF_WIDTH) & (np.abs(np.abs(a - mid) - PAD_OFFSET)
                                                         <= 0.008) & (pts[:, 2] > z - 0.01)
            if not 0.008 <= span <= MAX_GRASP_WIDTH or fingers.any():
                continue
            point = c + mid * u
            clear = hand_clearance(point, others, yaw, z + hand_above, z)
            score = min(clear, CLEARANCE_ENOUGH) - float(np.linalg.norm(point - target.center))
            if score > best_score:
                best, best_score = (point, z, float(yaw)), score
    return best


def side_entry(point: np.ndarray, yaw: float, others: list[Footprint], entry_z: float,
               hand_bottom: float = 0.030, hand_top: float = HAND_TOP) -> np.ndarray:
    """Where to come down beside a grasp under an overhang (an open drawer above a bowl).

    The hand, its finger axis along ``yaw``, descends vertically onto ``point`` unless
    something of ``others`` hangs over it above the hand's bottom at height ``entry_z`` (the
    grip site's, just above the object). Then the hand comes down at ``point`` plus the
    returned shift (along or across the finger axis, the smallest that clears the column) and
    moves across at ``entry_z``, under the overhang: possible only where nothing over
    ``point`` is lower than the hand's top (``hand_top`` above the grip site).

    Returns:
        The horizontal shift ``(2,)``: zeros for a straight descent (also when no shift helps).
    """
    u = np.array([np.cos(yaw), np.sin(yaw)])
    v = np.array([-u[1], u[0]])
    pts = np.concatenate([o.points for o in others]) if others else np.zeros((0, 3))
    above = pts[pts[:, 2] > entry_z + hand_bottom]

    def column_clear(at: np.ndarray) -> bool:
        rel = above[:, :2] - at
        return _rect_distance(rel @ u, rel @ v, HAND_HALF_LENGTH, HAND_HALF_WIDTH) > 0.005

    if column_clear(point):
        return np.zeros(2)
    rel = above[:, :2] - point
    under = np.abs(rel @ u) <= HAND_HALF_LENGTH + 0.005
    under &= np.abs(rel @ v) <= HAND_HALF_WIDTH + 0.005
    if float(above[under, 2].min()) < entry_z + hand_top:
        return np.zeros(2)  # no room for the hand under it
    for step in np.arange(0.02, 0.161, 0.02):
        for shift in (step * u, -step * u, step * v, -step * v):
            if column_clear(point + shift):
                return shift
    return np.zeros(2)


def _rect_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                   half_width: float) -> float:
    """Smallest distance of points (in a rectangle's frame) to the rectangle (0 inside)."""
    if len(along) == 0:
        return float("inf")
    dx = np.maximum(np.abs(along) - half_length, 0.0)
    dy = np.maximum(np.abs(across) - half_width, 0.0)
    return float(np.sqrt(dx * dx + dy * dy).min())
