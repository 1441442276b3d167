"""LTLf formula progression over letters, with obligations kept in a canonical DNF.

Usage: ``p = Progressor(["a", "b"]); p.step(initial_state(nnf(parse("a U b")))[0], 0b10)``

A *state* is a pair ``(dnf, may_end)``: the rest of the trace (if any) must satisfy the
positive Boolean combination ``dnf`` of elementary subformulas, and ``may_end`` says
whether the trace may stop now. This is exact because every progressed formula is a
Boolean combination of ``X psi`` and ``WX psi``, and those collapse into one such pair
(``X a & WX b == X(a & b)``, ``X a | WX b == WX(a | b)``). ``dnf`` is a frozenset of
terms, each a frozenset of elementary nodes (atoms, negated atoms, X, WX, F, G, U, R),
with terms that entail another term removed (:func:`planners.ltl_simplify.implies`,
plain subset inclusion included), conjuncts entailed by another conjunct dropped, and
terms holding ``p`` and ``!p`` dropped, so syntactically different but equal obligations
usually coincide; minimization merges the rest.
Letters are bit masks over the progressor's atom order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from planners.ltl_nnf import FALSE, TRUE, mk_and, mk_or, nnf
from planners.ltl_simplify import implies
from planners.ltl_syntax import Node

DNF = frozenset  # frozenset[frozenset[Node]]
State = tuple  # (DNF, bool)

__all__ = ["FALSE", "TRUE", "Progressor", "dnf", "from_dnf", "initial_state", "mk_and", "mk_or",
           "nnf"]
DNF_TRUE: DNF = frozenset((frozenset(),))
DNF_FALSE: DNF = frozenset()
ACCEPT_ALL: State = (DNF_TRUE, True)  # WX true: anything, including stopping
REJECT_ALL: State = (DNF_FALSE, False)  # X false: nothing


def dnf_or(a: DNF, b: DNF) -> DNF:
    """Disjunction of two DNFs with subsumed terms removed."""
    if not a:
        return b
    if not b or a == b:
        return a
    return _absorb(a | b)


def dnf_and(a: DNF, b: DNF) -> DNF:
    """Conjunction of two DNFs (distributed), contradictory and subsumed terms removed."""
    if not a or not b:
        return DNF_FALSE
    if a == DNF_TRUE:
        return b
    if b == DNF_TRUE:
        return a
    terms = {_reduce_term(s | t) for s in a for t in b}
    return _absorb(t for t in terms if not _contradictory(t))


REDUCE_MAX_PAIRS = 1 << 16
"""Above this many conjunct pairs, terms are kept as they are: the entailment checks are an
optimization (minimization merges equal states anyway) and cost quadratic time."""


@functools.lru_cache(maxsize=1 << 16)
def _reduce_term(term: frozenset[Node]) -> frozenset[Node]:
    """Drop conjuncts entailed by another conjunct (``F b`` beside ``F(a & F b)``)."""
    if len(term) < 2 or len(term) ** 2 > REDUCE_MAX_PAIRS:
        return term
    rest = set(term)
    for x in sorted(term, key=lambda n: -n.uid):
        if any(e is not x and implies(e, x) for e in rest):
            rest.discard(x)
    return term if len(rest) == len(term) else frozenset(rest)


@functools.lru_cache(maxsize=1 << 16)
def _term_implies(t: frozenset[Node], k: frozenset[Node]) -> bool:
    """Whether conjunction ``t`` entails conjunction ``k`` (every ``k`` element shown)."""
    if k <= t:
        return True
    return len(t) * len(k) <= REDUCE_MAX_PAIRS and all(any(implies(e, x) for e in t) for x in k)


def _contradictory(term: frozenset[Node]) -> bool:
    pos = neg = None
    for e in term:
        if e.op == "atom":
            pos = {e.name} if pos is None else pos | {e.name}
        elif e.op == "natom":
            neg = {e.name} if neg is None else neg | {e.name}
    return pos is not None and neg is not None and not pos.isdisjoint(neg)


def _absorb(terms: Iterable[frozenset[Node]]) -> DNF:
    """Drop disjuncts that entail another disjunct (they add nothing to the disjunction)."""
    kept: list[frozenset[Node]] = []
    for t in sorted(set(terms), key=lambda t: (len(t), sorted(n.uid for n in t))):
        if any(_term_implies(t, k) for k in kept):
            continue
        kept = [k for k in kept if not _term_implies(k, t)]
        kept.append(t)
    return frozenset(kept)


def dnf(node: Node) -> DNF:
    """DNF of an NNF node over its elementary subformulas (cached on the node; iterative)."""
    done = node.cache.get("dnf")
    if done is not None:
        return done
    stack = [node]
    while stack:
        n = stack[-1]
        if "dnf" in n.cache:
            stack.pop()
            continue
        if n.op in ("&", "|"):
            missing = [a for a in n.args if "dnf" not in a.cache]
            if missing:
                stack.extend(missing)
                continue
            parts = [a.cache["dnf"] for a in n.args]
            if n.op == "&":  # single-term conjuncts merge in one union (linear in clauses)
                if any(not p for p in parts):
                    out = DNF_FALSE
                else:
                    union = frozenset().union(*(next(iter(p)) for p in parts if len(p) == 1))
                    out = (DNF_FALSE if _contradictory(union)
                           else frozenset((_reduce_term(union),)))
                    for p in parts:
                        if len(p) != 1:
                            out = dnf_and(out, p)
            else:
                out = DNF_FALSE
                for p in parts:
                    out = dnf_or(out, p)
        elif n.op == "true":
            out = DNF_TRUE
        elif n.op == "false":
            out = DNF_FALSE
        else:
            out = frozenset((frozenset((n,)),))
        n.cache["dnf"] = out
        stack.pop()
    return node.cache["dnf"]


def from_dnf(terms: DNF) -> Node:
    """The NNF node of a DNF (terms and elements in canonical order)."""
    return mk_or(mk_and(t) for t in terms)


def initial_state(root: Node) -> State:
    """The state before any letter: ``X root`` (the trace must have a first letter)."""
    return (dnf(root), False)


def _and(x: State, y: State) -> State:
    return (dnf_and(x[0], y[0]), x[1] and y[1])


def _or(x: State, y: State) -> State:
    return (dnf_or(x[0], y[0]), x[1] or y[1])


def _conjoin(parts: list[State]) -> State:
    """Conjunction of several states; single-term obligations are merged in one union."""
    union = frozenset().union(*(next(iter(p[0])) for p in parts if len(p[0]) == 1))
    terms = DNF_FALSE if _contradictory(union) else frozenset((_reduce_term(union),))
    merged = (terms, all(p[1] for p in parts))
    for p in parts:
        if len(p[0]) != 1:
            merged = _and(merged, p)
    return merged


class UnknownAtom(Exception):
    """Progression of a partial letter needs the value of the atom with bit ``bit``."""

    def __init__(self, bit: int):
        super().__init__(bit)
        self.bit = bit


class Progressor:
    """Progress states over letters given as bit masks, memoizing per (node, relevant bits).

    A *partial* letter is a pair of masks ``(t, f)``: atoms known true and known false.
    Progression reads atoms lazily (``&``, ``|``, ``U``, ``R``, ``F``, ``G`` short-circuit),
    so :meth:`successors` finds each successor once per group of letters that agree on
    the atoms actually read, instead of once per letter.

    Args:
        atoms: Atom order; bit ``i`` of a letter mask is ``atoms[i]``. Atoms of a formula
            missing from this list are false in every letter.
    """

    def __init__(self, atoms: Sequence[str]):
        self.atoms = tuple(atoms)
        self.bit = {a: 1 << i for i, a in enumerate(self.atoms)}
        self.full = (1 << len(self.atoms)) - 1
        self._masks: dict[Node, int] = {}
        self._memo: dict[tuple[Node, int, int], State] = {}
        self._terms: dict[frozenset[Node], tuple[int, tuple[Node, ...]]] = {}
        self._term_memo: dict[tuple[frozenset[Node], int, int], State] = {}
        self._join_memo: dict[tuple[bool, State, State], State] = {}

    def letter_mask(self, letter: Iterable[str]) -> int:
        """Bit mask of a letter (atoms unknown to this progressor are ignored)."""
        bit = self.bit
        return sum(bit[a] for a in letter if a in bit)

    def mask(self, node: Node) -> int:
        """Bits of the atoms occurring in ``node``."""
        m = self._masks.get(node)
        if m is None:
            m = self._masks[node] = self.letter_mask(node.atoms)
        return m

    def state_mask(self, terms: DNF) -> int:
        """Bits a state's successor may depend on."""
        m = 0
        for t in terms:
            for e in t:
                m |= self.mask(e)
        return m

    def step(self, terms: DNF, letter: int) -> State:
        """The state after reading the full ``letter`` when the rest must satisfy ``terms``."""
        return self.partial(terms, letter, self.full & ~letter)

    def successors(self, terms: DNF, letters: Iterable[int]) -> dict[int, State]:
        """Successor of ``terms`` for each full letter, splitting letters only on atoms read."""
        out: dict[int, State] = {}
        stack = [(0, 0, list(letters))]
        while stack:
            t, f, group = stack.pop()
            try:
                succ = self.partial(terms, t, f)
            except UnknownAtom as need:
                on = [m for m in group if m & need.bit]
                off = [m for m in group if not m & need.bit]
                if off:
                    stack.append((t, f | need.bit, off))
                if on:
                    stack.append((t | need.bit, f, on))
                continue
            out.update(dict.fromkeys(group, succ))
        return out

    def partial(self, terms: DNF, t: int, f: int) -> State:
        """Successor under the partial letter ``(t, f)``; raises :class:`UnknownAtom`."""
        out = REJECT_ALL
        for term in terms:
            out = self.join(False, out, self.term(term, t, f))
            if out == ACCEPT_ALL:
                break
        return out

    def term(self, term: frozenset[Node], t: int, f: int) -> State:
        """Progress one conjunction of elementary nodes (memoized on its relevant bits)."""
        info = self._terms.get(term)
        if info is None:
            info = self._terms[term] = (self.state_mask(frozenset((term,))),
                                        tuple(sorted(term, key=lambda n: n.uid)))
        m, elems = info
        key = (term, t & m, f & m)
        out = self._term_memo.get(key)
        if out is None:
            parts = []
            for e in elems:
                part = self.node(e, t, f)
                if part == REJECT_ALL:
                    break
                parts.append(part)
            else:
                out = _conjoin(parts)
            self._term_memo[key] = out if out is not None else REJECT_ALL
            out = self._term_memo[key]
        return out

    def join(self, conj: bool, x: State, y: State) -> State:
        """Memoized conjunction (``conj``) or disjunction of two states."""
        key = (conj, x, y)
        out = self._join_memo.get(key)
        if out is None:
            out = self._join_memo[key] = (_and if conj else _or)(x, y)
        return out

    def node(self, node: Node, t: int, f: int) -> State:
        """Progress an NNF node under the partial letter ``(t, f)`` (memoized)."""
        m = self.mask(node)
        key = (node, t & m, f & m)
        done = self._memo.get(key)
        if done is not None:
            return done
        op, args = node.op, node.args
        if op in ("atom", "natom"):
            b = self.bit.get(node.name, 0)
            if b and not (t | f) & b:
                raise UnknownAtom(b)
            out = ACCEPT_ALL if bool(t & b) == (op == "atom") else REJECT_ALL
        elif op in ("&", "|"):  # short-circuit: later children are not read
            stop = REJECT_ALL if op == "&" else ACCEPT_ALL
            out = ACCEPT_ALL if op == "&" else REJECT_ALL
            for a in args:
                out = self.join(op == "&", out, self.node(a, t, f))
                if out == stop:
                    break
        elif op in ("X", "WX"):
            out = (dnf(args[0]), op == "WX")
        elif op in ("true", "false"):
            out = ACCEPT_ALL if op == "true" else REJECT_ALL
        else:
            out = self._temporal(node, t, f)
        self._memo[key] = out
        return out

    def _temporal(self, node: Node, t: int, f: int) -> State:
        """F, G, U, R by their one-step expansions, reading the right operand first."""
        op, args = node.op, node.args
        me = frozenset((frozenset((node,)),))
        now = self.node(args[-1], t, f)  # F/G: the operand; U/R: the right operand
        if op == "F":
            return now if now == ACCEPT_ALL else _or(now, (me, False))
        if op == "G":
            return now if now == REJECT_ALL else _and(now, (me, True))
        if op == "U":
            if now == ACCEPT_ALL:
                return now
            left = self.node(args[0], t, f)
            return now if left == REJECT_ALL else _or(now, _and(left, (me, False)))
        if op == "R":
            if now == REJECT_ALL:
                return now
            left = self.node(args[0], t, f)
            return now if left == ACCEPT_ALL else _and(now, _or(left, (me, True)))
        raise ValueError(f"not in negation normal form: {op!r}")
