"""The dependency direction of DESIGN.md, checked on every module's imports (ast, no import).

``experiments → policies → vla → decoding``; ``policies → envs``; ``vla → envs`` (the dataset
reader only); ``planners → decoding, envs``; ``decoding`` and ``envs`` import nothing of ours.
A package's CLI modules (``cli.py``, ``*_cli.py``) follow the same rules: commands that write
result files with provenance live in ``experiments``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("decoding", "envs", "vla", "planners", "policies", "experiments")
ALLOWED = {
    "decoding": set(),
    "envs": set(),
    "vla": {"decoding", "envs.dataset_reader"},
    "planners": {"decoding", "envs"},
    "policies": {"vla", "decoding", "envs"},
}


def _imports(path: Path) -> set[str]:
    """Dotted names of our packages that ``path`` imports (at any depth in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in OURS}


def _allowed(package: str, name: str) -> bool:
    """Whether ``package`` may import ``name`` (its own modules, or an allowed prefix)."""
    allowed = ALLOWED[package]
    return name.split(".")[0] == package or any(
        name == a or name.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_design_allows(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad += [f"{path.relative_to(ROOT)} imports {n}" for n in sorted(_imports(path))
                if not _allowed(package, n)]
    assert not bad, "\n".join(bad)
