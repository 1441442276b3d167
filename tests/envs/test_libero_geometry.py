"""Geometry helpers of the LIBERO expert (``envs/libero_geometry.py``): pure numpy, no LIBERO."""

import numpy as np

from envs.libero_geometry import (
    DOWN,
    HAND_HALF_LENGTH,
    Footprint,
    grip_frame,
    path_top,
)
from envs.libero_grasps import (
    MAX_GRASP_WIDTH,
    WRIST_RADIUS,
    fits_between_pads,
    is_open_container,
    part_grasp,
    rim_grasp,
    side_entry,
    span_along,
)


def _box(center, half, bottom, top):
    """A box's corner points as a footprint."""
    sides = [[c - h, c + h] for c, h in zip(center, half, strict=True)]
    xs, ys, zs = np.meshgrid(*sides, [bottom, top])
    points = np.stack([xs, ys, zs], -1).reshape(-1, 3)
    return Footprint(points, np.asarray(center, float), bottom, top)


def test_path_top_counts_only_what_lies_under_the_hands_way():
    cabinet = _box((0.0, -0.40), (0.10, 0.10), 0.9, 1.25)  # 0.30 m beside the path's line
    can = _box((0.25, 0.02), (0.03, 0.03), 0.9, 1.02)  # right beside the path's end
    start, end = np.array([-0.3, 0.0]), np.array([0.2, 0.0])
    assert path_top([cabinet, can], start, end, floor=0.95) == 1.02
    # nothing near: the floor (the carried or fetched object's own top)
    assert path_top([cabinet], start, end, floor=0.95) == 0.95
    # the cabinet moved next to the path: it counts
    near = _box((0.0, -0.10 - HAND_HALF_LENGTH), (0.10, 0.10), 0.9, 1.25)
    assert path_top([near, can], start, end, floor=0.95) == 1.25
    # a point path (start == end) is a disc of the reach around it
    assert path_top([can], end, end, floor=0.0) == 1.02
    assert path_top([can], start, start, floor=0.0) == 0.0


def test_span_along_a_box_is_its_side_along_the_finger_axis():
    box = _box((0.0, 0.0), (0.05, 0.01), 0.9, 1.0)  # 10 cm long, 2 cm wide
    np.testing.assert_allclose(span_along(box, 0.0), 0.10)
    np.testing.assert_allclose(span_along(box, np.pi / 2), 0.02)


def _slab(center, half, bottom, top, n=9):
    """A box filled with a grid of points (what a mesh's vertices give) as a footprint."""
    axes = [np.linspace(c - h, c + h, n) for c, h in zip(center, half, strict=True)]
    xs, ys, zs = np.meshgrid(*axes, np.linspace(bottom, top, 3))
    points = np.stack([xs, ys, zs], -1).reshape(-1, 3)
    return Footprint(points, np.asarray(center, float), bottom, top)


def _bowl(center, radius=0.053, bottom=0.90, top=0.95):
    """A bowl-like cylinder of points (rim circle at the top, foot at the bottom)."""
    phi = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)
    rim = np.stack([center[0] + radius * np.cos(phi), center[1] + radius * np.sin(phi)], -1)
    points = np.concatenate([np.column_stack([rim, np.full(72, z)])
                             for z in np.linspace(bottom, top, 6)])
    return Footprint(points, np.asarray(center, float), bottom, top)


def test_side_entry_is_straight_when_nothing_hangs_over_the_grasp():
    can = _box((0.20, 0.0), (0.03, 0.03), 0.9, 1.02)  # a neighbour, not over the hand
    np.testing.assert_array_equal(side_entry(np.zeros(2), 0.0, [can], 0.96), np.zeros(2))


def test_side_entry_comes_down_beside_an_overhang_and_only_with_room_under_it():
    # a drawer 11 cm above the grasp covers the hand's east end (the finger axis is along x)
    drawer = _slab((0.11, 0.0), (0.06, 0.08), 1.06, 1.12)
    shift = side_entry(np.zeros(2), 0.0, [drawer], entry_z=0.96)
    assert shift.any() and shift[0] < 0  # from the west, away from the drawer
    # the column above the shifted hand is clear of the drawer
    assert np.abs(shift).max() <= 0.16
    np.testing.assert_array_equal(side_entry(shift, 0.0, [drawer], 0.96), np.zeros(2))
    # a drawer lower than the hand's top leaves no room under it: straight (and it will fail)
    low = _slab((0.11, 0.0), (0.06, 0.08), 1.0, 1.12)
    np.testing.assert_array_equal(side_entry(np.zeros(2), 0.0, [low], 0.96), np.zeros(2))


def test_rim_grasp_keeps_the_wrist_out_from_under_an_overhang():
    bowl = _bowl((0.0, 0.0))
    drawer = _slab((0.10, 0.0), (0.06, 0.10), 1.06, 1.12)  # over the bowl's east side
    point, _, angle = rim_grasp(bowl, [drawer], 0.03)
    assert point[0] < -0.02  # the west half of the rim, the wrist clear of the drawer
    assert np.linalg.norm(drawer.points[:, :2] - point, axis=1).min() >= WRIST_RADIUS
    # with nothing overhead every rim point is open again (the first of equal scores)
    free_point, _, _ = rim_grasp(bowl, [], 0.03)
    assert free_point[0] > 0.04


def test_grip_frame_is_a_rotation_with_the_asked_axes():
    current = np.eye(3)
    frame = grip_frame(np.array([0.0, -1.0, 0.0]), DOWN, current)
    np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(frame), 1.0)
    np.testing.assert_allclose(frame[:, 2], DOWN)
    # the fingers are symmetric: of +-finger, the one nearer the current finger axis (x)
    flipped = grip_frame(np.array([-1.0, 0.0, 0.0]), DOWN, current)
    np.testing.assert_allclose(flipped[:, 0], [1.0, 0.0, 0.0])
    sideways = grip_frame(np.array([0.0, 0.0, -1.0]), np.array([0.0, -1.0, 0.0]), None)
    np.testing.assert_allclose(sideways[:, 0], [0.0, 0.0, -1.0])  # None: as asked, no flip
    np.testing.assert_allclose(np.linalg.det(sideways), 1.0)


def _solid(center, half, bottom, top):
    """Points filling a box, as ``object_points`` samples a primitive geom (a 9^3 grid)."""
    grid = np.linspace(-1.0, 1.0, 9)
    cube = np.stack(np.meshgrid(grid, grid, grid), -1).reshape(-1, 3)
    mid = np.array([*center, (bottom + top) / 2])
    return mid + cube * np.array([*half, (top - bottom) / 2])


def _pot():
    """A closed round pot (8 cm across, 15 cm tall) with a 1.3 cm thick handle out along -y."""
    angle, radius, z = np.meshgrid(np.linspace(0, 2 * np.pi, 72, endpoint=False),
                                   np.linspace(0.0, 0.04, 9), np.linspace(0.0, 0.15, 16))
    body = np.stack([radius * np.cos(angle), radius * np.sin(angle), z], -1).reshape(-1, 3)
    points = np.concatenate([body, _solid((0.0, -0.07), (0.0065, 0.03), 0.06, 0.14)])
    return Footprint(points, np.array([0.0, -0.025]), 0.0, 0.15)


def test_a_closed_object_too_wide_to_grasp_whole_is_grasped_by_a_part_that_fits():
    pot = _pot()
    assert not fits_between_pads(pot) and not is_open_container(pot)
    point, z, yaw = part_grasp(pot, [], hand_above=0.03)
    u = np.array([np.cos(yaw), np.sin(yaw)])
    rel = pot.points[:, :2] - point
    along, across = rel @ u, rel @ np.array([-u[1], u[0]])
    under_hand = (np.abs(along) <= HAND_HALF_LENGTH) & (np.abs(across) <= 0.034)
    assert pot.points[under_hand, 2].max() <= z + 0.03  # the hand comes down above it
    pads = (np.abs(across) <= 0.01) & (np.abs(along) <= 0.042) & (
        np.abs(pot.points[:, 2] - z) <= 0.01)
    assert 0.008 <= np.ptp(along[pads]) <= MAX_GRASP_WIDTH  # what the pads close on fits
    thin = Footprint(pot.points[np.abs(pot.points[:, 0]) < 0.02], pot.center, 0.0, 0.15)
    assert fits_between_pads(thin)


def test_a_bowl_is_an_open_container():
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    rim = np.stack([0.08 * np.cos(angles), 0.08 * np.sin(angles), np.full(24, 0.05)], -1)
    bottom = np.array([[0.0, 0.0, 0.005]])
    bowl = Footprint(np.concatenate([rim, bottom]), np.zeros(2), 0.0, 0.05)
    assert is_open_container(bowl) and not is_open_container(_pot())
