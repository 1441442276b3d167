"""Sound syntactic entailment between LTLf formulas in negation normal form.

Usage: ``implies(nnf(parse("F(a & F b)")), nnf(parse("F b")))  # True``

Progression produces obligations such as ``F b | F(a & F b)`` whose second disjunct is
redundant. :func:`implies` recognizes such cases from the syntax alone: it is sound
(``True`` only if every trace position satisfying ``x`` satisfies ``y``, on finite
non-empty traces) and deliberately incomplete (``False`` means "not shown"). Results are
memoized on the interned nodes.
"""

from __future__ import annotations

from planners.ltl_syntax import Node


def implies(x: Node, y: Node) -> bool:
    """Whether ``x`` entails ``y`` by the rules below (sound, incomplete)."""
    if x is y or y.op == "true" or x.op == "false":
        return True
    memo = x.cache.get("implies")
    if memo is None:
        memo = x.cache["implies"] = {}
    done = memo.get(y)
    if done is None:
        memo[y] = False  # cycles cannot occur (operands are smaller), but be safe
        done = memo[y] = _implies(x, y)
    return done


def _implies(x: Node, y: Node) -> bool:
    ox, oy = x.op, y.op
    if oy == "&":
        return all(implies(x, c) for c in y.args)
    if ox == "|":
        return all(implies(c, y) for c in x.args)
    if ox == "&" and any(implies(c, y) for c in x.args):
        return True
    if oy == "|" and any(implies(x, c) for c in y.args):
        return True
    a = x.args[0] if x.args else None
    if oy == "F":  # z now, or something that itself guarantees F z later
        return (implies(x, y.args[0])
                or (ox in ("F", "X", "G") and implies(a, y))
                or (ox == "U" and implies(x.args[1], y)))
    if oy == "G":
        return ox == "G" and implies(a, y.args[0])
    if oy == "X":
        return ox == "X" and implies(a, y.args[0])
    if oy == "WX":
        return ox in ("X", "WX") and implies(a, y.args[0])
    if oy == "U":  # b now, or a stronger until
        return implies(x, y.args[1]) or (
            ox == "U" and implies(a, y.args[0]) and implies(x.args[1], y.args[1]))
    if oy == "R":  # b forever, or a stronger release
        return (ox == "G" and implies(a, y.args[1])) or (
            ox == "R" and implies(a, y.args[0]) and implies(x.args[1], y.args[1]))
    return False
