"""The action check every env runs first in ``step``: finite real numbers of the right shape.

Usage: ``a = check_action(action, (4,), "(dx, dy, dz, jaw)")``

``np.asarray(action, dtype=np.float64)`` alone converts too much: a complex action loses its
imaginary part with only a warning, and strings (``"0.5"``) or object arrays are parsed. So the
dtype is checked before any conversion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REAL_KINDS = "iuf"  # numpy dtype kinds accepted: signed and unsigned ints, floats


def check_action(action: Any, shape: tuple[int, ...], layout: str) -> np.ndarray:
    """Refuse anything but finite real numbers of ``shape``; return them clipped to [-1, 1].

    Args:
        action: What ``env.step`` received (array-like).
        shape: The action space's shape.
        layout: What the entries mean, quoted in the shape error, e.g. ``"(dx, dy, dz, jaw)"``.

    Returns:
        The action as float64, clipped to [-1, 1].

    Raises:
        ValueError: Entries that are not real numbers (complex, bool, strings, bytes, objects,
            ragged nesting), a wrong shape, or a NaN/inf entry; the message says which.
    """
    try:
        a = np.asarray(action)
    except ValueError:  # ragged nesting
        raise ValueError(f"action must be an array of shape {shape} {layout}, got {action!r}"
                         ) from None
    if a.dtype.kind not in REAL_KINDS:
        raise ValueError(f"action must hold real numbers (ints or floats), got dtype {a.dtype}: "
                         f"{action!r}")
    if a.shape != shape:
        raise ValueError(f"action must have shape {shape} {layout}, got {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return np.clip(a, -1.0, 1.0)
