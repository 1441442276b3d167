"""Structure rules a new maintainer relies on, checked on the source (ast, nothing imported).

* No import circles among our modules (imports under ``if TYPE_CHECKING:`` are not runtime
  imports and do not count; imports inside functions do).
* Decoder specs (``cjacobi+ee``, ``flow@10:heun``) are spelled only in the registry,
  :mod:`vla.decoders`; every other module asks it.
* No module over 400 lines.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("decoding", "envs", "vla", "planners", "policies", "experiments")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _runtime_nodes(node: ast.AST):
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``path`` imports at runtime (``from pkg import mod`` -> ``pkg.mod``)."""
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            names |= (subs & modules.keys()) or {node.module}
    return names & modules.keys()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    cycles = _cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


SPEC = re.compile(r"^[a-z]+(\+ee|@\d+|:[a-z]+|\+ee@\d+)+$|^[a-z]+(\+ee)?@$")
"""A decoder spec with a setting (``jacobi+ee``, ``flow@10``, ``flow@5:heun``), or the head of
an f-string that builds one (``f"diffusion@{t}"``)."""


def _spec_literals(path: Path) -> list[str]:
    from vla.decoders import families

    known = set(families())
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                SPEC.match(node.value) and re.match(r"[a-z]+", node.value)[0] in known:
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return hits


def test_decoder_specs_are_spelled_only_in_the_registry():
    registry = ROOT / "vla" / "decoders.py"
    hits = [h for path in _modules().values() if path != registry for h in _spec_literals(path)]
    assert not hits, "decoder specs outside vla/decoders.py:\n" + "\n".join(hits)
    assert _spec_literals(registry), "the check must see the registry's own specs"


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
