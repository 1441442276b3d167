"""Every ``envs`` module imports first in a fresh interpreter (no circular imports by order).

``tests/test_structure.py`` checks the module graph for circles; this catches the ones that
only a package ``__init__`` creates (a submodule importing its package, whose ``__init__``
imports the submodule back), which show up only when that submodule is imported first.
"""

import os
import pkgutil
import subprocess
import sys

import envs

MODULES = sorted(m.name for m in pkgutil.walk_packages(envs.__path__, "envs."))


def test_every_envs_module_imports_first():
    env = {**os.environ, "MUJOCO_GL": "egl"}
    bad = []
    for name in MODULES:
        run = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                             text=True, timeout=120, env=env)
        if run.returncode:
            bad.append(f"{name}: {run.stderr.strip().splitlines()[-1]}")
    assert not bad, "\n".join(bad)
