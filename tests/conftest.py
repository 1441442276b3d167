"""Test-wide settings: headless MuJoCo, a reproducible hypothesis profile, small thread counts."""

import os

# Must happen before anything imports mujoco.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from hypothesis import settings  # noqa: E402

settings.register_profile("robodecode", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("robodecode")
