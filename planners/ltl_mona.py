"""Export LTLf to MONA (M2L-Str) and read MONA's automata back: an independent oracle.

Usage: ``[dfa] = run_mona([ltlf_to_mona(LTLf("a U b").node, ["a", "b"])], [["a", "b"]])``

The encoding is the standard first-order translation of LTLf over finite strings (as in
ltlf2dfa, written here independently): each atom ``p`` becomes a second-order variable
(the set of positions where it holds) of an M2L-Str program, a subformula is read at a
first-order position variable, and ``max($)`` is the last position of the trace. MONA's
automaton starts in a state that reads one extra don't-care symbol before the string,
so the initial state of the trace automaton is that state's successor.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path

from planners.dfa import DFA
from planners.ltl_syntax import Node


def mona_path() -> str | None:
    """Path of the ``mona`` executable, or ``None`` when it is not installed."""
    return shutil.which("mona")


def ltlf_to_mona(root: Node, atoms: Sequence[str]) -> str:
    """An M2L-Str program whose models are the finite traces satisfying ``root``.

    Args:
        root: A parse tree (``LTLf.node``; binary ``&``/``|`` as parsed).
        atoms: Atom order; atom ``atoms[i]`` becomes the MONA variable ``P{i}``.
    """
    var = {a: f"P{i}" for i, a in enumerate(atoms)}
    fresh = count(1)
    names = ", ".join(var.values()) or "P0"  # a formula without atoms still needs a variable
    return f"m2l-str;\nvar2 {names};\nex1 x0: x0 = 0 & {_fol(root, 'x0', var, fresh)};\n"


def _fol(node: Node, x: str, var: dict[str, str], fresh) -> str:
    """First-order translation of ``node`` read at position variable ``x``."""
    op, args = node.op, node.args

    def sub(n: Node, at: str) -> str:
        return _fol(n, at, var, fresh)

    if op in ("true", "false"):
        return op
    if op == "atom":
        return f"({x} in {var[node.name]})"
    if op == "!":
        return f"~{sub(args[0], x)}"
    if op in ("&", "|", "->", "<->"):
        sym = {"&": "&", "|": "|", "->": "=>", "<->": "<=>"}[op]
        return f"({sub(args[0], x)} {sym} {sub(args[1], x)})"
    y, z = f"x{next(fresh)}", f"x{next(fresh)}"
    in_rest = f"{x} <= {y} & {y} <= max($)"
    if op == "X":
        return f"(ex1 {y}: {y} = {x} + 1 & {y} <= max($) & {sub(args[0], y)})"
    if op == "WX":
        return f"(all1 {y}: ({y} = {x} + 1 & {y} <= max($)) => {sub(args[0], y)})"
    if op == "F":
        return f"(ex1 {y}: {in_rest} & {sub(args[0], y)})"
    if op == "G":
        return f"(all1 {y}: ({in_rest}) => {sub(args[0], y)})"
    if op in ("U", "W"):
        until = (f"(ex1 {y}: {in_rest} & {sub(args[1], y)} & "
                 f"(all1 {z}: ({x} <= {z} & {z} < {y}) => {sub(args[0], z)}))")
        if op == "U":
            return until
        w = f"x{next(fresh)}"
        always = f"(all1 {w}: ({x} <= {w} & {w} <= max($)) => {sub(args[0], w)})"
        return f"({until} | {always})"
    if op == "R":
        return (f"(all1 {y}: ({in_rest}) => ({sub(args[1], y)} | "
                f"(ex1 {z}: {x} <= {z} & {z} < {y} & {sub(args[0], z)})))")
    raise ValueError(f"no MONA encoding for operator {op!r}")


class MonaDFA:
    """MONA's automaton for a program, read from ``mona -q -u -w`` output."""

    def __init__(self, output: str, atoms: Sequence[str]):
        header = re.search(r"DFA for formula with free variables:(.*)", output)
        initial = re.search(r"Initial state: (\d+)", output)
        accepting = re.search(r"Accepting states:(.*)", output)
        if not (header and initial and accepting):
            raise ValueError(f"unreadable MONA output:\n{output}")
        names = header.group(1).split()
        self.atoms = list(atoms)
        column = {f"P{i}": a for i, a in enumerate(atoms)}
        self.variables = [column.get(v) for v in names]  # None for the placeholder variable
        self.accepting = {int(s) for s in accepting.group(1).split()}
        self.moves: dict[int, list[tuple[str, int]]] = {}
        for s, pattern, t in re.findall(r"State (\d+): ([01X]*) -> state (\d+)", output):
            self.moves.setdefault(int(s), []).append((pattern, int(t)))
        self.start = self._next(int(initial.group(1)), frozenset())  # skip the dummy symbol

    def _next(self, state: int, letter: frozenset[str]) -> int:
        bits = ["1" if a is not None and a in letter else "0" for a in self.variables]
        for pattern, target in self.moves[state]:
            if all(p in ("X", b) for p, b in zip(pattern, bits, strict=True)):
                return target
        raise ValueError(f"MONA automaton has no move from state {state} on {sorted(letter)}")

    def accepts(self, trace: Sequence[frozenset[str]]) -> bool:
        """Whether MONA's automaton accepts the non-empty ``trace``."""
        state = self.start
        for letter in trace:
            state = self._next(state, frozenset(letter))
        return state in self.accepting

    def to_dfa(self, letters: Sequence[frozenset[str]]) -> DFA:
        """The same automaton as a :class:`planners.dfa.DFA` over ``letters``."""
        states = sorted(self.moves)
        index = {s: i for i, s in enumerate(states)}
        table = [[index[self._next(s, x)] for x in letters] for s in states]
        return DFA(letters, table, index[self.start],
                   [index[s] for s in self.accepting if s in index])


def run_mona(programs: Sequence[str], atoms: Sequence[Sequence[str]], workers: int = 2,
             timeout: float = 60.0) -> list[MonaDFA]:
    """Run ``mona -q -u -w`` on each program (files in one temporary folder, in parallel).

    Args:
        programs: MONA program texts, e.g. from :func:`ltlf_to_mona`.
        atoms: The atom order each program was encoded with.
        workers: Concurrent mona processes.
        timeout: Seconds allowed per program.

    Raises:
        FileNotFoundError: If mona is not installed.
        RuntimeError: If mona fails on a program.
    """
    exe = mona_path()
    if exe is None:
        raise FileNotFoundError("mona is not installed (Debian/Ubuntu: apt-get install -y mona)")
    with tempfile.TemporaryDirectory(prefix="ltlf-mona-") as tmp:
        paths = []
        for i, text in enumerate(programs):
            path = Path(tmp) / f"f{i}.mona"
            path.write_text(text)
            paths.append(path)

        def one(path: Path) -> str:
            out = subprocess.run([exe, "-q", "-u", "-w", str(path)], capture_output=True,
                                 text=True, timeout=timeout)
            if out.returncode != 0:
                raise RuntimeError(f"mona failed on {path.read_text()!r}:\n"
                                   f"{out.stdout}{out.stderr}")
            return out.stdout

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outputs = list(pool.map(one, paths))
    return [MonaDFA(o, a) for o, a in zip(outputs, atoms, strict=True)]
