"""LTLf specifications: parse, evaluate on finite traces, compile to minimized DFAs.

Usage: ``spec = LTLf("G(!server_room) & F(kitchen & F lab)"); spec.accepts([{"kitchen"}, {"lab"}])``

Semantics is standard LTLf on non-empty finite traces s0..sn (one set of true atoms per
state): ``X`` is strong next (false at the last state), ``WX`` weak next (true there),
``F``/``G``/``U``/``R``/``W`` range over the remaining states. :meth:`LTLf.accepts`
evaluates the syntax tree directly; :meth:`LTLf.to_dfa` compiles by formula progression
(:mod:`planners.ltl_progress`) into an explicit DFA, minimized by Hopcroft's algorithm
(:mod:`planners.dfa`). A DFA reads the whole trace from its initial state and accepts iff
it ends in an accepting state. The grammar is documented in :mod:`planners.ltl_syntax`.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterable

from planners import ltl_progress as lp
from planners.dfa import DFA, Letter, as_letter, difference, minimize
from planners.ltl_syntax import LTLSyntaxError, Node, make, parse, to_text

__all__ = ["LTLf", "LTLSyntaxError", "LTLCapacityError", "DFA", "equivalent",
           "counterexample", "progress", "clear_dfa_cache", "MAX_DEFAULT_ATOMS",
           "DEFAULT_MAX_STATES", "MAX_TABLE_ENTRIES"]

MAX_DEFAULT_ATOMS = 16
"""Most atoms for the default alphabet (every subset of the atoms: 2**16 letters)."""
DEFAULT_MAX_STATES = 20_000
"""Default cap on the states explored while compiling a DFA."""
SPLIT_LETTERS_ABOVE = 16
"""Above this many distinct letters (and four per atom the state reads) a state's successors are
found by splitting the letters on the atoms progression reads (few progressions); otherwise
letter by letter (splitting restarts progression after every atom read, which costs more than it
saves when most atoms are read)."""
MAX_TABLE_ENTRIES = 2_000_000
"""Cap on explored states x distinct letters (the transition table), whatever max_states."""


class LTLCapacityError(ValueError):
    """A DFA or default alphabet would exceed its cap (raised instead of exploding)."""


class LTLf:
    """An LTLf formula over finite traces.

    Attributes:
        text: The formula as given.
        atoms: The atom names it mentions.
    """

    __slots__ = ("text", "node", "atoms")

    def __init__(self, text: str):
        """Parse ``text``.

        Raises:
            LTLSyntaxError: If ``text`` is empty or malformed (message shows a caret).
            TypeError: If ``text`` is not a ``str``.
        """
        try:
            node = parse(text)
        except RecursionError:
            raise LTLSyntaxError(text, 0, "a formula nested less deeply") from None
        self.text = text
        self.node: Node = node
        self.atoms: frozenset[str] = node.atoms

    @classmethod
    def from_node(cls, node: Node) -> LTLf:
        """Wrap an interned syntax node (its text is generated)."""
        out = cls.__new__(cls)
        out.text, out.node, out.atoms = to_text(node), node, node.atoms
        return out

    def __repr__(self) -> str:
        return f"LTLf({self.text!r})"

    def __reduce__(self):
        return (LTLf, (self.text,))  # re-parse on unpickling: nodes are interned per process

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        """Syntactic equality (same parse tree); see :func:`equivalent` for semantics."""
        return isinstance(other, LTLf) and other.node is self.node

    def __hash__(self) -> int:
        return hash(self.node.uid)

    def __and__(self, other: LTLf) -> LTLf:
        return LTLf.from_node(make("&", self.node, _check(other, "other").node))

    def __or__(self, other: LTLf) -> LTLf:
        return LTLf.from_node(make("|", self.node, _check(other, "other").node))

    def __invert__(self) -> LTLf:
        return LTLf.from_node(make("!", self.node))

    def accepts(self, trace: Iterable[Iterable[str]]) -> bool:
        """Whether the non-empty finite ``trace`` satisfies the formula (no DFA, no cap).

        Args:
            trace: One set of true atoms per state, s0 first, e.g. ``[{"hall"}, {"lab"}]``.

        Raises:
            ValueError: If the trace is empty or a letter is not a set of strings.
        """
        letters = validate_trace(trace)
        return _evaluate(self.node, letters)

    def to_dfa(self, alphabet: Iterable[Iterable[str]] | None = None,
               max_states: int = DEFAULT_MAX_STATES, *, minimal: bool = True) -> DFA:
        """Compile to an explicit DFA by formula progression.

        Args:
            alphabet: The letters (sets of atoms) traces may use; default every subset of
                :attr:`atoms` (at most ``MAX_DEFAULT_ATOMS`` atoms). Atoms of a letter that
                the formula does not mention are irrelevant.
            max_states: Cap on explored (unminimized) states; explored states times
                distinct letters is also capped at ``MAX_TABLE_ENTRIES``.
            minimal: Minimize with Hopcroft's algorithm (default) or return the raw
                progression automaton.

        The result is cached per (formula, alphabet, max_states, minimal) and shared: treat
        it as read-only.

        Returns:
            A DFA accepting exactly the traces over ``alphabet`` that satisfy the formula.

        Raises:
            LTLCapacityError: If the default alphabet or the state count exceeds its cap.
            ValueError: If ``alphabet`` is empty or malformed.
        """
        letters = alphabet_of(self.atoms, alphabet)
        with _depth_guard(self):
            return _compile(self, letters, max_states, minimal)

    def is_satisfiable(self, alphabet: Iterable[Iterable[str]] | None = None,
                       max_states: int = DEFAULT_MAX_STATES) -> bool:
        """Whether some trace over ``alphabet`` satisfies the formula (search stops early)."""
        letters = alphabet_of(self.atoms, alphabet)
        with _depth_guard(self):
            return _explore(self, letters, max_states, stop_at_accepting=True) is None


@functools.lru_cache(maxsize=256)
def _compile(formula: LTLf, letters: tuple[Letter, ...], max_states: int, minimal: bool) -> DFA:
    """Memoized compilation (voting over sampled formulas compares each one many times)."""
    dfa = _explore(formula, letters, max_states)
    return minimize(dfa) if minimal else dfa


@contextlib.contextmanager
def _depth_guard(formula: LTLf):
    """Turn a ``RecursionError`` of the recursive compilation passes into LTLCapacityError.

    Parsing, negation normal form, DNF, rendering and :meth:`LTLf.accepts` are iterative;
    progression and entailment recurse over the nesting of temporal operators, so a formula
    nested thousands of temporal levels deep is refused cleanly instead of crashing.
    """
    try:
        yield
    except RecursionError:
        raise LTLCapacityError(
            f"the formula is nested too deeply to compile ({len(formula.text)} characters; "
            f"more than about {sys.getrecursionlimit() // 4} nested temporal operators); "
            "flatten it (e.g. a conjunction of shallow clauses)") from None


def clear_dfa_cache() -> None:
    """Forget memoized DFAs (for benchmarks timing cold compilations)."""
    _compile.cache_clear()


def _check(formula: object, name: str) -> LTLf:
    if not isinstance(formula, LTLf):
        raise TypeError(f"{name} must be an LTLf, got {type(formula).__name__}")
    return formula


def validate_trace(trace: Iterable[Iterable[str]]) -> list[Letter]:
    """Return ``trace`` as a list of frozensets, checking it is a non-empty letter sequence."""
    if isinstance(trace, (str, bytes)) or isinstance(trace, (set, frozenset)):
        raise ValueError("trace must be a sequence of letters (sets of atoms), "
                         f"e.g. [{{'a'}}, {{'b'}}], got {trace!r}")
    try:
        letters = [as_letter(x, f"trace[{i}]") for i, x in enumerate(trace)]
    except TypeError:
        raise ValueError(f"trace must be an iterable of letters, got {trace!r}") from None
    if not letters:
        raise ValueError("trace must be non-empty (LTLf traces have at least one state)")
    return letters


def alphabet_of(atoms: frozenset[str], alphabet: Iterable[Iterable[str]] | None
                ) -> tuple[Letter, ...]:
    """Resolve an alphabet: the given letters (deduplicated) or every subset of ``atoms``.

    Raises:
        LTLCapacityError: If the default alphabet would need more than ``MAX_DEFAULT_ATOMS``.
        ValueError: If ``alphabet`` is empty or malformed.
    """
    if alphabet is None:
        if len(atoms) > MAX_DEFAULT_ATOMS:
            raise LTLCapacityError(
                f"the default alphabet (every subset of the atoms) would have 2**{len(atoms)} "
                f"letters; the cap is {MAX_DEFAULT_ATOMS} atoms. Pass alphabet= with the atom "
                "sets your states can actually have.")
        order = sorted(atoms)
        return tuple(frozenset(a for i, a in enumerate(order) if m >> i & 1)
                     for m in range(1 << len(order)))
    if isinstance(alphabet, (str, bytes, set, frozenset)):
        raise ValueError("alphabet must be a sequence of letters (sets of atoms), "
                         f"e.g. [set(), {{'a'}}], got {alphabet!r}")
    letters = dict.fromkeys(as_letter(x, f"alphabet[{i}]") for i, x in enumerate(alphabet))
    if not letters:
        raise ValueError("alphabet must contain at least one letter")
    return tuple(letters)


def _explore(formula: LTLf, letters: tuple[Letter, ...], max_states: int,
             stop_at_accepting: bool = False) -> DFA | None:
    """Breadth-first progression from ``X formula`` over ``letters``.

    Returns the unminimized DFA, or with ``stop_at_accepting`` ``None`` as soon as an
    accepting state is found (and a DFA, unused, when none is reachable).
    """
    if not isinstance(max_states, int) or max_states < 1:
        raise ValueError(f"max_states must be a positive int, got {max_states!r}")
    prog = lp.Progressor(sorted(formula.atoms))
    masks = [prog.letter_mask(x) for x in letters]
    symbols = list(dict.fromkeys(masks))
    cap = min(max_states, max(1, MAX_TABLE_ENTRIES // len(symbols)))
    column = {m: i for i, m in enumerate(symbols)}
    start = lp.initial_state(lp.nnf(formula.node))
    states, ids, table = [start], {start: 0}, []
    for terms, _ in states:  # the list grows while we walk it
        relevant = prog.state_mask(terms)
        keys = [m & relevant for m in symbols]  # the letter bits this state reads
        unique = dict.fromkeys(keys)
        split = len(unique) > max(SPLIT_LETTERS_ABOVE, 4 * relevant.bit_count())
        succ_of = (prog.successors(terms, unique) if split
                   else {k: prog.step(terms, k) for k in unique})
        seen: dict[int, int] = {}
        for key in dict.fromkeys(keys):
            succ = succ_of[key]
            nxt = ids.get(succ)
            if nxt is None:
                if stop_at_accepting and succ[1]:
                    return None
                if len(states) >= cap:
                    raise LTLCapacityError(
                        f"the DFA of {formula.text!r} exceeds {cap} states over "
                        f"{len(letters)} letters (max_states={max_states}, at most "
                        f"{MAX_TABLE_ENTRIES} table entries); pass a smaller alphabet (the "
                        "atom sets your states can have) or a larger max_states")
                nxt = ids[succ] = len(states)
                states.append(succ)
            seen[key] = nxt
        table.append([seen[k] for k in keys])
    accepting = [i for i, (_, may_end) in enumerate(states) if may_end]
    return DFA(letters, table, 0, accepting, letter_column=[column[m] for m in masks],
               atoms=formula.atoms, _checked=True)


def counterexample(a: LTLf, b: LTLf, alphabet: Iterable[Iterable[str]] | None = None
                   ) -> tuple[Letter, ...] | None:
    """A shortest trace satisfying exactly one of ``a`` and ``b``, or ``None`` if equivalent.

    Args:
        a: First formula.
        b: Second formula.
        alphabet: Letters to compare over; default every subset of the union of their atoms.
    """
    _check(a, "a"), _check(b, "b")
    letters = alphabet_of(a.atoms | b.atoms, alphabet)
    dfa_a, dfa_b = a.to_dfa(letters), b.to_dfa(letters)
    return difference(dfa_a, dfa_b)


def equivalent(a: LTLf, b: LTLf, alphabet: Iterable[Iterable[str]] | None = None) -> bool:
    """Whether ``a`` and ``b`` accept the same traces over ``alphabet`` (product-DFA search).

    Args:
        a: First formula.
        b: Second formula.
        alphabet: Letters to compare over; default every subset of the union of their atoms.
    """
    return counterexample(a, b, alphabet) is None


def progress(formula: LTLf, letter: Iterable[str]) -> tuple[LTLf, bool]:
    """Progress ``formula`` over the first letter of a trace.

    Returns:
        ``(rest, may_end)``: a trace ``letter, s1..sn`` satisfies ``formula`` iff ``rest``
        accepts ``s1..sn`` (n >= 1), and the one-letter trace ``[letter]`` does iff
        ``may_end``.
    """
    _check(formula, "formula")
    prog = lp.Progressor(sorted(formula.atoms))
    with _depth_guard(formula):
        terms, may_end = prog.step(lp.dnf(lp.nnf(formula.node)),
                                   prog.letter_mask(as_letter(letter)))
        return LTLf.from_node(lp.from_dnf(terms)), may_end


def _postorder(root: Node) -> list[Node]:
    """Distinct subnodes, children before parents (iterative: deep formulas are fine)."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((a, False) for a in node.args)
    return order


def _evaluate(root: Node, trace: list[Letter]) -> bool:
    """Truth of ``root`` at position 0, computing every subformula at every position."""
    n = len(trace)
    val: dict[Node, list[bool]] = {}
    for node in _postorder(root):
        op = node.op
        a = val[node.args[0]] if node.args else None
        b = val[node.args[1]] if len(node.args) > 1 else None
        if op in ("true", "false"):
            v = [op == "true"] * n
        elif op in ("atom", "natom"):
            v = [(node.name in s) == (op == "atom") for s in trace]
        elif op == "!":
            v = [not x for x in a]
        elif op == "&":  # n-ary in formulas built from negation normal form
            v = [all(col) for col in zip(*(val[x] for x in node.args), strict=True)]
        elif op == "|":
            v = [any(col) for col in zip(*(val[x] for x in node.args), strict=True)]
        elif op == "->":
            v = [(not x) or y for x, y in zip(a, b, strict=True)]
        elif op == "<->":
            v = [x == y for x, y in zip(a, b, strict=True)]
        elif op in ("X", "WX"):
            v = a[1:] + [op == "WX"]
        else:  # F G U R W: one backward sweep, `nxt` is the value at position i + 1
            v = [False] * n
            nxt = op in ("G", "R", "W")  # value just past the end
            for i in range(n - 1, -1, -1):
                if op == "F":
                    nxt = a[i] or nxt
                elif op == "G":
                    nxt = a[i] and nxt
                elif op in ("U", "W"):
                    nxt = b[i] or (a[i] and nxt)
                else:  # R
                    nxt = b[i] and (a[i] or nxt)
                v[i] = nxt
        val[node] = v
    return val[root][0]
