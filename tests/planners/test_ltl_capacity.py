"""Long and deep formulas: iterative passes, or a clean LTLCapacityError, never RecursionError."""

import pytest

from envs.symbolic import DroneNav
from planners.check import spec_dfa
from planners.ltl import LTLCapacityError, LTLf
from planners.ltl_syntax import to_text


def test_401_clauses_over_401_atoms_compile():
    n = 401
    atoms = [f"r{i}" for i in range(n)]
    spec = LTLf(" & ".join(f"G(!{a})" for a in atoms))
    letters = [set(), *({a} for a in atoms)]
    dfa = spec.to_dfa(alphabet=letters)
    assert dfa.accepts([set(), set()]) and not dfa.accepts([set(), {atoms[-1]}])
    assert spec.accepts([set()]) and not spec.accepts([{atoms[n // 2]}])
    assert LTLf(to_text(spec.node)) == spec


@pytest.mark.parametrize("n", [401, 5000])
def test_long_conjunctions_of_distinct_clauses_compile(n):
    m = next(m for m in range(2, 200) if m * (m - 1) // 2 >= n)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)][:n]
    spec = LTLf(" & ".join(f"G(!r{i} | !r{j})" for i, j in pairs))  # a RecursionError before
    assert len(spec.node.atoms) == m
    letters = [set(), *({f"r{i}"} for i in range(m)), {"r0", "r1"}]
    dfa = spec.to_dfa(alphabet=letters)
    assert dfa.accepts([{"r3"}, set()]) and not dfa.accepts([{"r3"}, {"r0", "r1"}])
    assert spec.accepts([{"r3"}, set()]) and not spec.accepts([{"r0", "r1"}])


@pytest.mark.parametrize("n", [401, 5000])
def test_long_conjunction_over_a_domain(n):
    d = DroneNav("office")
    rooms = sorted(r for r in d.atoms if r != "lab")
    text = " & ".join(f"G(!{rooms[i % len(rooms)]})" if i % 2 else "F(lab)" for i in range(n))
    dfa = spec_dfa(d, text)  # a RecursionError before
    assert not dfa.accepts([{"lobby"}, {"lab"}])  # every room but the lab is forbidden
    assert dfa.accepts([{"lab"}])


def test_too_many_atoms_for_the_default_alphabet_is_a_capacity_error():
    spec = LTLf(" & ".join(f"F(a{i})" for i in range(401)))
    with pytest.raises(LTLCapacityError, match="alphabet"):
        spec.to_dfa()


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deep_negations_and_parentheses(depth):
    neg = LTLf("!" * depth + "a")
    assert neg.accepts([{"a"}]) == (depth % 2 == 0)
    assert neg.to_dfa().accepts([{"a"}]) == (depth % 2 == 0)
    paren = LTLf("(" * depth + "!(" * depth + "a" + ")" * depth + ")" * depth)
    assert paren.to_dfa().accepts([set()]) == (depth % 2 == 1)
    assert len(repr(paren)) > depth


@pytest.mark.parametrize("op", ["->", "U", "<->", "|"])
def test_long_chains_of_every_binary_operator(op):
    text = f" {op} ".join(["a", "b"] * 2500)
    spec = LTLf(text)
    assert LTLf(to_text(spec.node)) == spec
    try:
        dfa = spec.to_dfa()
    except LTLCapacityError:
        return
    for trace in ([{"a"}], [{"b"}], [set(), {"a", "b"}]):
        assert dfa.accepts(trace) == spec.accepts(trace)


def test_deep_temporal_nesting_is_compiled_or_a_capacity_error():
    depth = 3000
    text = "F(a & " * depth + "b" + ")" * depth
    spec = LTLf(text)
    assert spec.accepts([{"a"}] * depth + [{"a", "b"}])
    with pytest.raises(LTLCapacityError, match="deep"):
        spec.to_dfa()
    nexts = LTLf("X " * depth + "a")
    assert nexts.accepts([set()] * depth + [{"a"}])
    try:
        dfa = nexts.to_dfa()
    except LTLCapacityError:
        return
    assert dfa.accepts([set()] * depth + [{"a"}])
