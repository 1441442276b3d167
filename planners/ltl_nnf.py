"""Negation normal form of LTLf formulas, with canonical n-ary conjunctions and disjunctions.

Usage: ``from planners.ltl_nnf import nnf; nnf(parse("!(a U b)"))  # !b R (!a | !b) as U/R``

:func:`nnf` pushes negations down to atoms (``natom``), rewrites ``->``, ``<->`` and ``W``,
and flattens ``&``/``|`` into sorted, deduplicated n-ary nodes (:func:`mk_and`,
:func:`mk_or`). It works with an explicit stack, so formulas of any depth or length convert.
"""

from __future__ import annotations

from collections.abc import Iterable

from planners.ltl_syntax import Node, make

TRUE, FALSE = make("true"), make("false")


def mk_and(args: Iterable[Node]) -> Node:
    """Flattened, deduplicated, sorted conjunction with constants and ``p & !p`` folded."""
    return _mk_junction("&", args, unit=TRUE, zero=FALSE)


def mk_or(args: Iterable[Node]) -> Node:
    """Flattened, deduplicated, sorted disjunction with constants and ``p | !p`` folded."""
    return _mk_junction("|", args, unit=FALSE, zero=TRUE)


def _mk_junction(op: str, args: Iterable[Node], unit: Node, zero: Node) -> Node:
    flat: set[Node] = set()
    for a in args:
        if a is zero:
            return zero
        if a.op == op:
            flat.update(a.args)
        elif a is not unit:
            flat.add(a)
    pos = {a.name for a in flat if a.op == "atom"}
    if any(a.op == "natom" and a.name in pos for a in flat):
        return zero
    if not flat:
        return unit
    if len(flat) == 1:
        return next(iter(flat))
    return make(op, *sorted(flat, key=lambda n: n.uid))


def _mk_temporal(op: str, *args: Node) -> Node:
    """Build a temporal node, folding the constant cases that are exact on finite traces."""
    a = args[0]
    if op in ("F", "G") and (a.op in ("true", "false") or a.op == op):
        return a  # F true = true, G false = false, F F a = F a, ...
    if (op, a.op) in (("X", "false"), ("WX", "true")):
        return a
    if op in ("U", "R"):
        left, right = args
        if right.op in ("true", "false"):
            return right  # a U true = true, a U false = false, a R true/false likewise
        if (op, left.op) in (("U", "false"), ("R", "true")):
            return right
    return make(op, *args)


def nnf(node: Node, negate: bool = False) -> Node:
    """Negation normal form of ``node`` (negated if ``negate``): ``!`` only on atoms.

    ``->``, ``<->`` and ``W`` are rewritten (``a W b == b R (a | b)``); ``&``/``|`` become
    n-ary and canonical via :func:`mk_and`/:func:`mk_or`. Iterative (an explicit stack of
    pending subformulas), so formulas of any depth or length convert.
    """
    key = ("nnf", negate)
    done = node.cache.get(key)
    if done is not None:
        return done
    stack = [(node, negate)]
    while stack:
        n, neg = stack[-1]
        if ("nnf", neg) in n.cache:
            stack.pop()
            continue
        missing = [(a, g) for a, g in _nnf_needs(n, neg) if ("nnf", g) not in a.cache]
        if missing:
            stack.extend(missing)
            continue
        n.cache[("nnf", neg)] = _nnf_build(n, neg)
        stack.pop()
    return node.cache[key]


def _nnf_needs(node: Node, negate: bool) -> list[tuple[Node, bool]]:
    """The ``(subformula, negate)`` pairs whose normal forms :func:`_nnf_build` reads."""
    op, args = node.op, node.args
    if op in ("true", "false", "atom", "natom"):
        return []
    if op == "!":
        return [(args[0], not negate)]
    if op == "->":
        return [(args[0], not negate), (args[1], negate)]
    if op == "<->":
        return [(a, g) for g in (False, True) for a in args]
    if op in ("&", "|"):
        return [(a, negate) for a in _junction_leaves(node)]
    return [(a, negate) for a in args]


def _junction_leaves(node: Node) -> list[Node]:
    """Operands of the maximal same-operator ``&``/``|`` tree under ``node`` (iterative).

    ``a & b & c`` parses as ``(a & b) & c``; normalizing the leaves at once keeps a conjunction
    of n clauses linear instead of re-flattening every prefix.
    """
    leaves = node.cache.get("leaves")
    if leaves is None:
        leaves, stack = [], [node]
        while stack:
            n = stack.pop()
            if n.op == node.op:
                stack.extend(reversed(n.args))
            else:
                leaves.append(n)
        node.cache["leaves"] = leaves
    return leaves


def _nnf_build(node: Node, negate: bool) -> Node:
    """Negation normal form of ``node`` from its operands' (already cached) normal forms."""
    op, args = node.op, node.args

    def f(a: Node, neg: bool = False) -> Node:
        return a.cache[("nnf", neg)]

    if op in ("true", "false"):
        return make("false" if (op == "true") == negate else "true")
    if op in ("atom", "natom"):
        return make(("natom" if negate else "atom") if op == "atom"
                    else ("atom" if negate else "natom"), name=node.name)
    if op == "!":
        return f(args[0], not negate)
    if op in ("&", "|"):
        conj = (op == "&") != negate
        return (mk_and if conj else mk_or)(f(a, negate) for a in _junction_leaves(node))
    if op == "->":  # a -> b == !a | b
        a, b = args
        return (mk_and([f(a), f(b, True)]) if negate else mk_or([f(a, True), f(b)]))
    if op == "<->":
        a, b = args
        same = mk_or([mk_and([f(a), f(b)]), mk_and([f(a, True), f(b, True)])])
        diff = mk_or([mk_and([f(a), f(b, True)]), mk_and([f(a, True), f(b)])])
        return diff if negate else same
    if op in ("X", "WX", "F", "G"):
        dual = {"X": "WX", "WX": "X", "F": "G", "G": "F"}[op]
        return _mk_temporal(dual if negate else op, f(args[0], negate))
    if op in ("U", "R"):
        dual = "R" if op == "U" else "U"
        return _mk_temporal(dual if negate else op, f(args[0], negate), f(args[1], negate))
    if op == "W":
        a, b = args
        if negate:  # !(a W b) == !b U (!a & !b)
            return _mk_temporal("U", f(b, True), mk_and([f(a, True), f(b, True)]))
        return _mk_temporal("R", f(b), mk_or([f(a), f(b)]))
    raise ValueError(f"unknown operator {op!r}")
