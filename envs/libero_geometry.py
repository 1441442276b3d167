"""Object footprints, places and frames for the LIBERO expert (``envs/libero_expert.py``).

Usage: ``prints = footprints(sim_env, object_points(sim_env))``; grasps: ``envs/libero_grasps.py``

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


def free_spot(sim_env: Any, site: str, target: Footprint, body_xy: np.ndarray,
              prints: dict[str, Footprint], margin: float = 0.015
              ) -> tuple[np.ndarray, float]:
    """Where on region ``site`` to put ``target`` down, and the height it lands at.

    The site's centre and :func:`surface_under` it, unless something of ``prints`` (everything
    but the target) other than the region's owner already stands there (the first of two moka
    pots on the stove's cook region): then the point of the region (the target's body at least
    ``margin`` inside its edge, every centimetre) whose target footprint keeps the most room to
    them, and the highest point under that footprint.

    Args:
        sim_env: LIBERO's robosuite env.
        site: The region's site (``"flat_stove_1_cook_region"``).
        target: The object to place, as it is now.
        body_xy: The target's body position now (the point the region must contain).
        prints: Every object but the target (the region's owner included).
        margin: How far inside the region's edge the body must land.
    """
    owner = region_owner(sim_env, site)
    others = {n: p for n, p in prints.items() if n != owner}
    pos, mat = site_frame(sim_env, site)
    half = np.abs(mat @ sim_env.sim.model._model.site_size[
        sim_env.sim.model.site_name2id(site)])[:2]
    rel = target.points[::max(1, len(target.points) // 300), :2] - body_xy
    reach = float(np.linalg.norm(rel, axis=1).max())
    near = [p.points[np.all(np.abs(p.points[:, :2] - pos[:2]) <= half + reach, axis=1)
                     & (p.points[:, 2] > pos[2] + 0.01)] for p in others.values()]
    occupied = np.concatenate([np.zeros((0, 3)), *near])[::1 + sum(map(len, near)) // 500]

    def room(at: np.ndarray) -> float:
        if not len(occupied):
            return np.inf
        d = (at + rel)[:, None, :] - occupied[None, :, :2]
        return float(np.sqrt((d ** 2).sum(-1)).min())

    if room(pos[:2]) > 0.01:
        return pos[:2], surface_under(sim_env, site, prints)
    spans = [np.arange(-h + margin, h - margin + 1e-9, 0.01) for h in half]
    spots = pos[:2] + np.stack(np.meshgrid(*spans), -1).reshape(-1, 2)
    best = max(spots, key=room)
    d = np.linalg.norm(occupied[:, None, :2] - (best + rel)[None], axis=-1).min(axis=1)
    under = occupied[d < 0.01]
    own = surface_under(sim_env, site, {owner: prints[owner]} if owner in prints else {})
    return best, max(own, float(under[:, 2].max()) if len(under) else own)


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
