"""Object footprints and grasp-yaw planning for the LIBERO expert (``envs/libero_expert.py``).

Usage: ``prints = footprints(sim_env, object_points(sim_env)); yaw = grasp_yaw(prints[...], ...)``

Everything is read from MuJoCo's model and data arrays of LIBERO's robosuite env: an object's
collision geoms give a point cloud (mesh vertices, or a grid on a primitive's bounding box),
whose world pose gives the object's footprint on the table and its height range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HAND_HALF_LENGTH = 0.105  # the Panda hand along the finger axis (robosuite 1.4 collision mesh)
HAND_HALF_WIDTH = 0.034  # across it
PAD_OFFSET = 0.042  # finger pad centres from the grip site when open
MAX_GRASP_WIDTH = 0.066  # object span between the pads that still leaves room to descend
STRIP_HALF_WIDTH = 0.010  # the pads' half-width across the finger axis, plus margin
CLEARANCE_ENOUGH = 0.03  # hand clearance beyond which a yaw is not preferred for it
RIM_INSET = 0.006  # the pinch point inside a bowl wall's outer radius (about half the wall)
RIM_DEPTHS = (0.02, 0.016, 0.012)  # grip-site depths below a rim to try (deepest first)
HAND_TOP = 0.090  # the hand's top above the grip site; the wrist and arm rise from there
WRIST_RADIUS = 0.05  # the wrist's reach around the grip site, seen from above


@dataclass
class Footprint:
    """An object's extent: its world points and summary numbers.

    Attributes:
        points: World points of its collision geoms, ``(n, 3)``.
        center: Centre of the horizontal extent (x, y).
        bottom: Lowest z.
        top: Highest z.
    """

    points: np.ndarray
    center: np.ndarray
    bottom: float
    top: float

    @property
    def height(self) -> float:
        """Vertical extent in metres."""
        return self.top - self.bottom


def object_points(sim_env: Any, per_mesh: int = 400) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Each object's collision geoms with points in the geom's frame (computed once per env).

    Args:
        sim_env: LIBERO's robosuite env (``objects_dict``, ``sim``).
        per_mesh: Most vertices kept per mesh geom (evenly subsampled).

    Returns:
        ``{object name: [(geom id, local points (k, 3)), ...]}``.
    """
    model = sim_env.sim.model._model
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    things = {**sim_env.fixtures_dict, **sim_env.objects_dict}
    for name, obj in things.items():
        if name in sim_env.fixtures_dict and ("table" in name or "floor" in name):
            continue  # what everything stands on is no obstacle
        body = sim_env.sim.model.body_name2id(obj.root_body)
        geoms = [g for g in range(model.ngeom)
                 if in_subtree(model, model.geom_bodyid[g], body)
                 and (model.geom_contype[g] or model.geom_conaffinity[g])]
        entries = []
        for g in geoms:
            if model.geom_type[g] == 7:  # mjGEOM_MESH: the mesh's own vertices
                mesh = model.geom_dataid[g]
                start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
                verts = np.asarray(model.mesh_vert[start:start + count], dtype=np.float64)
                step = max(1, count // per_mesh)
                entries.append((g, verts[::step]))
            else:  # a primitive: a grid filling its bounding box
                center, half = model.geom_aabb[g][:3], model.geom_aabb[g][3:]
                grid = np.linspace(-1.0, 1.0, 9)
                cube = np.stack(np.meshgrid(grid, grid, grid), -1).reshape(-1, 3)
                entries.append((g, center + cube * half))
        out[name] = entries
    return out


def in_subtree(model: Any, body: int, root: int) -> bool:
    """Whether MuJoCo body ``body`` is ``root`` or one of its descendants."""
    while body > 0:
        if body == root:
            return True
        body = model.body_parentid[body]
    return False


def footprints(sim_env: Any, points: dict[str, list[tuple[int, np.ndarray]]],
               names: tuple[str, ...] | None = None) -> dict[str, Footprint]:
    """The current footprint of every object of ``points`` (or only of ``names``)."""
    data = sim_env.sim.data._data
    out = {}
    for name in names or tuple(points):
        world = np.concatenate([local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g]
                                for g, local in points[name]])
        lo, hi = world.min(axis=0), world.max(axis=0)
        out[name] = Footprint(world, (lo[:2] + hi[:2]) / 2.0, float(lo[2]), float(hi[2]))
    return out


def region_owner(sim_env: Any, name: str) -> str:
    """The object or fixture a BDDL place belongs to.

    That is the place itself if it is one, else the longest name that prefixes the region's
    (``"basket_1_contain_region"`` -> ``"basket_1"``); a region of the table itself
    (``"main_table_stove_front_region"``) returns ``name``.
    """
    things = {**sim_env.fixtures_dict, **sim_env.objects_dict}
    if name in things:
        return name
    return max((n for n in things if name.startswith(n + "_")), key=len, default=name)


def surface_under(sim_env: Any, site: str, prints: dict[str, Footprint]) -> float:
    """The height where an object placed on region ``site`` lands.

    That is the highest point of ``prints`` under the site's horizontal extent, or the site's
    own height (about the table's) when nothing stands there.
    """
    pos, mat = site_frame(sim_env, site)
    half = np.abs(mat @ sim_env.sim.model._model.site_size[
        sim_env.sim.model.site_name2id(site)])[:2]
    top = float(pos[2])
    for p in prints.values():
        inside = np.all(np.abs(p.points[:, :2] - pos[:2]) <= half, axis=1)
        if inside.any():
            top = max(top, float(p.points[inside, 2].max()))
    return top


def site_frame(sim_env: Any, site: str) -> tuple[np.ndarray, np.ndarray]:
    """World position ``(3,)`` and rotation matrix ``(3, 3)`` of site ``site``."""
    sid = sim_env.sim.model.site_name2id(site)
    data = sim_env.sim.data._data
    return data.site_xpos[sid].copy(), data.site_xmat[sid].reshape(3, 3).copy()


DOWN = np.array([0.0, 0.0, -1.0])


def grip_frame(finger: np.ndarray, approach: np.ndarray, current: np.ndarray | None
               ) -> np.ndarray:
    """The grip site's rotation with the finger axis along ``finger``, pointing along ``approach``.

    Both are unit vectors, perpendicular. Of the two finger directions (the fingers are
    symmetric), the one nearer the ``current`` rotation's is taken (``None``: ``finger``).
    """
    u = -finger if current is not None and float(current[:, 0] @ finger) < 0.0 else finger
    return np.stack([u, np.cross(approach, u), approach], axis=1)


def axis_angle_error(desired: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The world-frame rotation vector taking rotation matrix ``current`` to ``desired``."""
    err = desired @ current.T
    cos = np.clip((np.trace(err) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    vec = np.array([err[2, 1] - err[1, 2], err[0, 2] - err[2, 0], err[1, 0] - err[0, 1]])
    sin = np.linalg.norm(vec) / 2.0
    if angle < 1e-6:
        return np.zeros(3)
    if sin < 1e-6:  # a half turn: the axis is the matrix's +1 eigenvector
        values, vectors = np.linalg.eigh((err + err.T) / 2.0)
        return vectors[:, int(np.argmax(values))] * angle
    return vec / (2.0 * sin) * angle


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


def path_top(others: list[Footprint], start: np.ndarray, end: np.ndarray, floor: float,
             reach: float = HAND_HALF_LENGTH + 0.03) -> float:
    """The highest point of ``others`` within ``reach`` of the segment ``start``-``end`` (x, y).

    The hand, turned any way, sweeps about ``reach`` around its path; ``floor`` is returned
    when nothing is that close.
    """
    seg = end - start
    length2 = float(seg @ seg)
    top = floor
    for other in others:
        rel = other.points[:, :2] - start
        t = np.clip(rel @ seg / length2, 0.0, 1.0) if length2 > 0 else np.zeros(len(rel))
        near = np.linalg.norm(rel - t[:, None] * seg, axis=1) <= reach
        if near.any():
            top = max(top, float(other.points[near, 2].max()))
    return top


def _rect_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                   half_width: float) -> float:
    """Smallest distance of points (in a rectangle's frame) to the rectangle (0 inside)."""
    if len(along) == 0:
        return float("inf")
    dx = np.maximum(np.abs(along) - half_length, 0.0)
    dy = np.maximum(np.abs(across) - half_width, 0.0)
    return float(np.sqrt(dx * dx + dy * dy).min())
