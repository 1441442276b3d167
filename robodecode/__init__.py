"""One import name for the six top-level packages, checked to be robodecode's own.

The layout fixes ``decoding``, ``envs``, ``vla``, ``policies``, ``planners`` and
``experiments`` as top-level packages; ``robodecode.vla``, ``from robodecode import decoding``
and ``import robodecode.vla.model`` give the very same module objects under a second name.
On first use each package is checked to be the one installed beside this file, so a same-named
package earlier on ``sys.path`` (your own ``experiments/``, another project's ``envs``) raises
an ImportError naming both paths instead of silently running the wrong code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGES = ("decoding", "envs", "vla", "policies", "planners", "experiments")
HOME = Path(__file__).resolve().parent.parent


def load(name: str) -> ModuleType:
    """Import ``name`` (e.g. ``vla.model``) once its top-level package is checked to be ours.

    Raises:
        ImportError: If the top-level package resolves to another folder than ``HOME``'s.
    """
    top = name.partition(".")[0]
    spec = importlib.util.find_spec(top)
    origin = Path(spec.origin).resolve().parent if spec and spec.origin else None
    if origin != HOME / top:
        raise ImportError(f"{top!r} resolves to {origin}, not robodecode's {HOME / top}: a "
                          f"same-named package shadows it; rename it or run from another folder")
    return importlib.import_module(name)


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``robodecode.<package>[.module]`` and hands back the top-level module object."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102
        head, _, rest = fullname.partition(".")
        if head == __name__ and rest.partition(".")[0] in PACKAGES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # noqa: D102
        module = load(spec.name.partition(".")[2])
        spec.loader_state = module.__spec__  # the import system overwrites __spec__ ...
        return module

    def exec_module(self, module):  # noqa: D102
        module.__spec__ = module.__spec__.loader_state  # ... so put the real one back


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.insert(0, _Alias())


def __getattr__(name: str) -> ModuleType:
    if name in PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
