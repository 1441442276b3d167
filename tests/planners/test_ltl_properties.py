"""Property tests (hypothesis): DFAs agree with direct evaluation, minimization keeps languages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ltl_random import formulas, traces

from planners.dfa import DFA, difference, minimize
from planners.ltl import LTLf, alphabet_of, equivalent, progress
from planners.ltl_progress import nnf

ALL = alphabet_of(frozenset({"a", "b", "c"}), None)


@settings(max_examples=150)
@given(formulas(), st.lists(traces(), min_size=1, max_size=5))
def test_dfa_acceptance_equals_direct_evaluation(text, trace_list):
    spec = LTLf(text)
    dfa, raw = spec.to_dfa(ALL), spec.to_dfa(ALL, minimal=False)
    for trace in trace_list:
        want = spec.accepts(trace)
        assert dfa.accepts(trace) == want
        assert raw.accepts(trace) == want


@given(formulas())
def test_minimized_language_equals_unminimized(text):
    spec = LTLf(text)
    raw = spec.to_dfa(ALL, minimal=False)
    small = minimize(raw)
    assert small.n_states <= raw.n_states
    assert difference(small, raw) is None
    assert minimize(small).n_states == small.n_states  # already minimal
    assert small.live == frozenset(
        s for s in range(small.n_states) if _reaches(small, s))


@settings(max_examples=60)
@given(formulas())
def test_hopcroft_matches_table_filling(text):
    raw = LTLf(text).to_dfa(ALL, minimal=False)
    assert LTLf(text).to_dfa(ALL).n_states == _table_filling_classes(raw)


@settings(max_examples=80)
@given(st.integers(1, 25), st.integers(1, 20), st.randoms(use_true_random=False))
def test_both_hopcroft_variants_agree_on_random_dfas(n, width, rng):
    letters = [frozenset({f"x{i}"}) for i in range(width)]
    table = [[rng.randrange(n) for _ in range(width)] for _ in range(n)]
    dfa = DFA(letters, table, 0, [s for s in range(n) if rng.random() < 0.3])
    by_letter, vectorized = minimize(dfa, "letters"), minimize(dfa, "numpy")
    assert by_letter.n_states == vectorized.n_states == _table_filling_classes(dfa)
    assert [by_letter.successors(s) for s in range(by_letter.n_states)] == \
        [vectorized.successors(s) for s in range(vectorized.n_states)]
    assert by_letter.accepting == vectorized.accepting


@settings(max_examples=40)
@given(formulas(atoms=("a", "b", "c", "d", "e"), max_leaves=6))
def test_both_hopcroft_variants_agree_on_formulas(text):
    raw = LTLf(text).to_dfa(minimal=False)
    by_letter, vectorized = minimize(raw, "letters"), minimize(raw, "numpy")
    assert [by_letter.successors(s) for s in range(by_letter.n_states)] == \
        [vectorized.successors(s) for s in range(vectorized.n_states)]


def _table_filling_classes(dfa):
    """Number of Myhill-Nerode classes of the reachable states (naive pair marking)."""
    reach, todo = {dfa.initial}, [dfa.initial]
    while todo:
        for t in dfa.successors(todo.pop()).values():
            if t not in reach:
                reach.add(t)
                todo.append(t)
    states = sorted(reach)
    moves = {s: list(dfa.successors(s).values()) for s in states}
    apart = {(p, q) for p in states for q in states if (p in dfa.accepting) != (q in dfa.accepting)}
    changed = True
    while changed:
        changed = False
        for p in states:
            for q in states:
                if (p, q) not in apart and any(
                        (x, y) in apart for x, y in zip(moves[p], moves[q], strict=True)):
                    apart.add((p, q))
                    changed = True
    classes = []
    for s in states:
        if not any((s, c) not in apart for c in classes):
            classes.append(s)
    return len(classes)


def _reaches(dfa, state):
    seen, todo = {state}, [state]
    while todo:
        s = todo.pop()
        if s in dfa.accepting:
            return True
        for t in dfa.successors(s).values():
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return False


@given(formulas(), traces())
def test_negation_complements(text, trace):
    spec = LTLf(text)
    assert (~spec).accepts(trace) == (not spec.accepts(trace))
    assert (~spec).to_dfa(ALL).accepts(trace) == (not spec.to_dfa(ALL).accepts(trace))


@given(formulas(), traces(max_len=6))
def test_progress_matches_the_suffix(text, trace):
    spec = LTLf(text)
    rest, may_end = progress(spec, trace[0])
    if len(trace) == 1:
        assert may_end == spec.accepts(trace)
    else:
        assert rest.accepts(trace[1:]) == spec.accepts(trace)


@given(formulas(), traces())
def test_negation_normal_form_preserves_meaning(text, trace):
    spec = LTLf(text)
    normal = LTLf.from_node(nnf(spec.node))
    assert LTLf(normal.text).accepts(trace) == spec.accepts(trace)


@settings(max_examples=60)
@given(formulas(max_leaves=4), formulas(max_leaves=4))
def test_operator_identities_on_random_operands(p, q):
    p, q = f"({p})", f"({q})"
    for left, right in [
        (f"F {p}", f"true U {p}"),
        (f"G {p}", f"!F !{p}"),
        (f"{p} W {q}", f"({p} U {q}) | G {p}"),
        (f"WX {p}", f"!X !{p}"),
        (f"{p} R {q}", f"!(!{p} U !{q})"),
        (f"{p} U {q}", f"{q} | ({p} & X({p} U {q}))"),
        (f"{p} R {q}", f"{q} & ({p} | WX({p} R {q}))"),
    ]:
        assert equivalent(LTLf(left), LTLf(right), alphabet=ALL), (left, right)


@settings(max_examples=80)
@given(formulas(atoms=("a", "b", "c", "d")), traces(atoms=("a", "b", "c", "d")))
def test_letter_splitting_and_letter_by_letter_build_the_same_language(text, trace):
    import planners.ltl as ltl

    spec, letters = LTLf(text), alphabet_of(frozenset("abcd"), None)
    saved = ltl.SPLIT_LETTERS_ABOVE
    try:
        ltl.SPLIT_LETTERS_ABOVE = 0  # always split letter groups
        split = ltl._explore(spec, letters, 10_000)
        ltl.SPLIT_LETTERS_ABOVE = 1 << 20  # always one progression per letter
        direct = ltl._explore(spec, letters, 10_000)
    finally:
        ltl.SPLIT_LETTERS_ABOVE = saved
    assert difference(split, direct) is None
    assert split.accepts(trace) == spec.accepts(trace)
