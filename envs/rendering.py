"""Offscreen MuJoCo renderers that are closed before EGL is torn down at interpreter exit."""

from __future__ import annotations

import atexit
import weakref
from typing import Any


def make_renderer(owner: Any, model: Any, width: int, height: int) -> tuple[Any, Any]:
    """Create a ``mujoco.Renderer`` for ``model`` and arrange for it to be closed in time.

    A renderer still open at interpreter exit is closed by the garbage collector after
    mujoco's EGL module has already terminated its display, which prints an ``EGLError``
    traceback (in every eval worker process, for instance). ``atexit`` runs its hooks last
    registered first, so registering the close here, after mujoco was imported, closes the
    renderer before EGL goes away.

    Args:
        owner: The object whose lifetime bounds the renderer's (usually the env).
        model: The ``mujoco.MjModel`` to render.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        ``(renderer, close)``: ``close()`` is idempotent; call it from the env's ``close``.
    """
    import mujoco

    renderer = mujoco.Renderer(model, height, width)
    close = weakref.finalize(owner, renderer.close)
    atexit.register(close)
    return renderer, close
