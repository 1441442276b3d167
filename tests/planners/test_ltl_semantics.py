"""LTLf semantics on finite traces, the DFA API, alphabets, caps, equivalence, progression."""

from __future__ import annotations

import pytest

from planners.dfa import DFA, difference, minimize
from planners.ltl import (
    MAX_DEFAULT_ATOMS,
    LTLCapacityError,
    LTLf,
    counterexample,
    equivalent,
    progress,
)

E, A, B, AB = frozenset(), frozenset({"a"}), frozenset({"b"}), frozenset({"a", "b"})


@pytest.mark.parametrize(("text", "trace", "want"), [
    ("a", [A], True),
    ("a", [E, A], False),
    ("X a", [A], False),             # strong next: no next state
    ("X a", [E, A], True),
    ("WX a", [E], True),             # weak next: true at the last state
    ("WX a", [E, E], False),
    ("F a", [E, E, A], True),
    ("F a", [E, E], False),
    ("G a", [A, A], True),
    ("G a", [A, E], False),
    ("a U b", [A, A, B], True),
    ("a U b", [A, A], False),        # b must eventually hold
    ("a U b", [B], True),
    ("a U b", [A, E, B], False),
    ("a R b", [B, B], True),         # b held to the end: released or not
    ("a R b", [B, AB, E], True),
    ("a R b", [B, E], False),
    ("a W b", [A, A], True),
    ("a W b", [A, E], False),
    ("a W b", [A, B], True),
    ("G(a -> X b)", [A], False),
    ("G(a -> WX b)", [A], True),
    ("F(WX false)", [E, A, B], True),  # "the last state exists"
    ("G(X true)", [E, E], False),      # X true fails at the last state
    ("a -> b", [E], True),
    ("a <-> b", [AB], True),
    ("a <-> b", [A], False),
    ("true", [E], True),
    ("false", [AB], False),
])
def test_accepts_hand_checked(text, trace, want):
    spec = LTLf(text)
    assert spec.accepts(trace) is want
    assert spec.to_dfa().accepts(trace) is want


def test_design_example_and_irrelevant_atoms():
    spec = LTLf("G(!server_room) & F(kitchen & F(lab))")
    assert spec.accepts([{"hall"}, {"kitchen"}, {"lab"}])
    assert spec.accepts([{"kitchen", "lab"}])
    assert not spec.accepts([{"hall"}, {"lab"}, {"kitchen"}])
    assert not spec.accepts([{"kitchen"}, {"server_room"}, {"lab"}])
    assert spec.accepts([["kitchen"], ("lab", "lamp_on")])  # any iterable of str is a letter


@pytest.mark.parametrize(("trace", "match"), [
    ([], "non-empty"),
    ("kitchen", "sequence of letters"),
    ({"a"}, "sequence of letters"),
    ([{"a"}, "kitchen"], r"trace\[1\] is the string"),
    ([{1}], "str atom names"),
    ([None], r"trace\[0\] must be a set"),
    (None, "iterable of letters"),
])
def test_bad_traces_raise_value_errors(trace, match):
    with pytest.raises(ValueError, match=match):
        LTLf("F a").accepts(trace)


def test_dfa_api_default_alphabet():
    dfa = LTLf("a U b").to_dfa()
    assert set(dfa.letters) == {E, A, B, AB} and len(dfa.letters) == 4
    assert dfa.initial not in dfa.accepting  # the empty word is never a trace
    assert dfa.n_states == 3  # start, satisfied (sink), violated (sink)
    s = dfa.step(dfa.initial, {"a"})
    assert s == dfa.initial  # still waiting for b
    sat = dfa.step(s, ["b"])
    assert sat in dfa.accepting and dfa.step(sat, E) == sat
    dead = dfa.step(dfa.initial, frozenset())
    assert dead not in dfa.live and dfa.initial in dfa.live and sat in dfa.live
    assert dfa.step(dfa.initial, {"a", "lamp_on"}) == s  # atoms outside the formula ignored
    assert dfa.successors(dfa.initial) == {E: dead, A: s, B: sat, AB: sat}
    with pytest.raises(ValueError, match="not a state"):
        dfa.step(99, {"a"})
    with pytest.raises(ValueError, match="non-empty"):
        dfa.accepts([])
    with pytest.raises(ValueError, match="is the string"):
        dfa.step(dfa.initial, "a")


def test_domain_alphabet_one_hot_rooms():
    rooms = [{"hall"}, {"kitchen"}, {"lab"}, {"server_room"}]
    spec = LTLf("G(!server_room) & F(kitchen & F lab)")
    dfa = spec.to_dfa(alphabet=rooms + [{"hall"}])  # repeats are dropped
    assert dfa.letters == tuple(frozenset(r) for r in rooms)
    assert dfa.accepts([{"hall"}, {"kitchen"}, {"hall"}, {"lab"}])
    assert not dfa.accepts([{"kitchen"}, {"server_room"}, {"lab"}])
    with pytest.raises(ValueError, match="not in the alphabet"):
        dfa.step(dfa.initial, {"kitchen", "lab"})  # no state has both
    assert dfa.step(dfa.initial, {"hall", "lamp_on"}) == dfa.step(dfa.initial, {"hall"})
    # over one-hot letters "never both" is implied, over all subsets it is not
    a, b = LTLf("F kitchen"), LTLf("F kitchen & G !(kitchen & lab)")
    assert equivalent(a, b, alphabet=rooms) and not equivalent(a, b)


@pytest.mark.parametrize("alphabet", [[], "ab", {"a"}, [{"a"}, "b"]])
def test_bad_alphabets(alphabet):
    with pytest.raises(ValueError):
        LTLf("F a").to_dfa(alphabet=alphabet)


def test_known_minimal_sizes():
    assert LTLf("F a").to_dfa().n_states == 2
    assert LTLf("G a").to_dfa().n_states == 3
    assert LTLf("X a").to_dfa().n_states == 4
    assert LTLf("true").to_dfa().n_states == 2
    assert LTLf("false").to_dfa().n_states == 1
    assert LTLf(" & ".join(f"F a{i}" for i in range(4))).to_dfa().n_states == 16


def test_ten_atoms_default_alphabet_and_caps():
    ten = LTLf("G(!a0) & F(a1 & F a2) & (a3 U a4) & G(a5 -> F a6) & (!a7 W a8) & X a9")
    dfa = ten.to_dfa()
    assert len(dfa.letters) == 1024 and dfa.n_states >= 10
    many = LTLf(" | ".join(f"F p{i}" for i in range(MAX_DEFAULT_ATOMS + 1)))
    with pytest.raises(LTLCapacityError, match="alphabet="):
        many.to_dfa()
    one_hot = [{f"p{i}"} for i in range(MAX_DEFAULT_ATOMS + 1)]
    assert many.to_dfa(alphabet=one_hot).n_states == 2  # fine with the domain's letters
    chain = LTLf(" & ".join(f"G(p{i} -> F p{i + 1})" for i in range(12)))
    with pytest.raises(LTLCapacityError, match="table entries"):  # 2**13 letters: refuse early
        chain.to_dfa()
    with pytest.raises(LTLCapacityError, match="max_states=5"):
        LTLf(" & ".join(f"F a{i}" for i in range(4))).to_dfa(max_states=5)
    with pytest.raises(ValueError, match="max_states"):
        LTLf("a").to_dfa(max_states=0)


@pytest.mark.parametrize(("a", "b"), [
    ("F a", "true U a"),
    ("G a", "!F !a"),
    ("a W b", "(a U b) | G a"),
    ("WX a", "!X !a"),
    ("a R b", "!(!a U !b)"),
    ("a W b", "b R (a | b)"),
    ("F F a", "F a"),
    ("G F G a", "F G a"),
    ("F G a", "G F a"),  # on finite traces both say "a at the last state"
    ("X(a & b)", "X a & X b"),
    ("WX(a | b)", "WX a | WX b"),
    ("a -> b", "!a | b"),
    ("F(a | b)", "F a | F b"),
    ("G(a & b)", "G a & G b"),
    ("a U (b U c)", "a U (b U c)"),
    ("G(X true) ", "false"),
    ("F(WX false)", "true"),
    ("X a & X !a", "false"),
    ("WX a & WX !a", "WX false"),
    ("F(kitchen & F lab) & G !kitchen", "false"),
])
def test_equivalences(a, b):
    assert equivalent(LTLf(a), LTLf(b))
    assert counterexample(LTLf(a), LTLf(b)) is None


@pytest.mark.parametrize(("a", "b", "witness_len"), [
    ("X a", "WX a", 1),
    ("F a", "G a", 2),
    ("a U b", "a W b", 1),
    ("F(a & b)", "F a & F b", 2),
])
def test_non_equivalences_have_shortest_witnesses(a, b, witness_len):
    fa, fb = LTLf(a), LTLf(b)
    witness = counterexample(fa, fb)
    assert witness is not None and len(witness) == witness_len
    assert fa.accepts(witness) != fb.accepts(witness)
    assert not equivalent(fa, fb)


def test_equivalent_rejects_non_formulas():
    with pytest.raises(TypeError, match="LTLf"):
        equivalent(LTLf("a"), "a")  # type: ignore[arg-type]


def test_is_satisfiable():
    assert LTLf("F a & G !a").is_satisfiable() is False
    assert LTLf("X false").is_satisfiable() is False
    assert LTLf("G(a -> X b) & G(b -> X a) & F a").is_satisfiable() is False
    assert LTLf("F a & F b & G !(a & b)").is_satisfiable() is True
    assert LTLf("F a").is_satisfiable(alphabet=[set(), {"b"}]) is False
    dfa = LTLf("F a & G !a").to_dfa()
    assert dfa.initial not in dfa.live and dfa.n_states == 1


def test_progress():
    rest, may_end = progress(LTLf("a U b"), {"a"})
    assert not may_end and equivalent(rest, LTLf("a U b"))
    rest, may_end = progress(LTLf("a U b"), {"b"})
    assert may_end and equivalent(rest, LTLf("true"))
    rest, may_end = progress(LTLf("G(a -> X b)"), {"a"})
    assert not may_end and equivalent(rest, LTLf("b & G(a -> X b)"))


def test_boolean_operators_build_formulas():
    a, b = LTLf("F a"), LTLf("G b")
    assert equivalent(a & b, LTLf("F a & G b"))
    assert equivalent(a | b, LTLf("F a | G b"))
    assert equivalent(~a, LTLf("G !a"))
    assert LTLf((a & b).text) == a & b


def test_minimize_is_canonical_and_idempotent():
    d1, d2 = LTLf("F a").to_dfa(), LTLf("true U a").to_dfa()
    assert [d1.successors(s) for s in range(d1.n_states)] == \
        [d2.successors(s) for s in range(d2.n_states)]
    again = minimize(d1)
    assert again.n_states == d1.n_states and difference(again, d1) is None


def test_dfa_constructor_validates():
    with pytest.raises(ValueError, match="distinct"):
        DFA([{"a"}, {"a"}], [[0, 0]], 0, [0])
    with pytest.raises(ValueError, match="initial"):
        DFA([{"a"}], [[0]], 1, [0])
    with pytest.raises(ValueError, match=r"table\[0\]"):
        DFA([{"a"}], [[3]], 0, [0])
    with pytest.raises(ValueError, match="empty"):
        DFA([], [[]], 0, [])
    dfa = DFA([set(), {"a"}], [[0, 1], [1, 1]], 0, [1])
    assert dfa.accepts([set(), {"a"}]) and not dfa.accepts([set()])
    with pytest.raises(ValueError, match="same alphabet"):
        difference(dfa, LTLf("F b").to_dfa())


def test_pickle_round_trip():
    import pickle

    spec = LTLf("G(!server_room) & F(kitchen & F lab)")
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.node is spec.node
    dfa = pickle.loads(pickle.dumps(spec.to_dfa()))
    assert dfa.accepts([{"kitchen"}, {"lab"}])


def test_minimize_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        minimize(LTLf("F a").to_dfa(), method="brzozowski")
