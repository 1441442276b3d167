"""Geometry helpers of the LIBERO expert (``envs/libero_geometry.py``): pure numpy, no LIBERO."""

import numpy as np

from envs.libero_geometry import HAND_HALF_LENGTH, Footprint, path_top, span_along


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
