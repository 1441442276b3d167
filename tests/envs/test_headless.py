"""``import envs`` makes EGL MuJoCo's default without a display, before any env imports mujoco."""

from __future__ import annotations

import os
import subprocess
import sys


def _mujoco_gl_after_import(env: dict[str, str]) -> str:
    code = "import envs, os; print(os.environ.get('MUJOCO_GL'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_import_envs_defaults_to_egl_without_a_display():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    assert _mujoco_gl_after_import(env) == "egl"


def test_an_explicit_mujoco_gl_is_kept():
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    assert _mujoco_gl_after_import({**env, "MUJOCO_GL": "osmesa"}) == "osmesa"
