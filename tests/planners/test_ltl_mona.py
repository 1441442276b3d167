"""Differential tests of the LTLf engine against MONA on random formulas and traces."""

from __future__ import annotations

import random
import time

import pytest
from ltl_random import random_formula, random_trace
from mona_oracle import ltlf_to_mona, require_mona, run_mona

from planners.dfa import difference
from planners.ltl import LTLf, alphabet_of

ATOMS = ("a", "b", "c")


def _differential(n_formulas: int, seed: int, depth: int, traces_per_formula: int,
                  atoms: tuple[str, ...] = ATOMS) -> None:
    require_mona()
    rng = random.Random(seed)
    specs = [LTLf(random_formula(rng, atoms, depth)) for _ in range(n_formulas)]
    order = [sorted(s.atoms) for s in specs]
    start = time.perf_counter()
    monas = run_mona([ltlf_to_mona(s.node, o) for s, o in zip(specs, order, strict=True)], order)
    mona_s = time.perf_counter() - start
    letters = alphabet_of(frozenset(atoms), None)
    mismatches, checked = [], 0
    for spec, mona in zip(specs, monas, strict=True):
        dfa = spec.to_dfa(letters)
        witness = difference(dfa, mona.to_dfa(letters))
        if witness is not None:
            mismatches.append((spec.text, "language", [sorted(x) for x in witness]))
        for _ in range(traces_per_formula):
            trace = random_trace(rng, atoms, 6)
            want = mona.accepts(trace)
            got = (spec.accepts(trace), dfa.accepts(trace))
            checked += 1
            if got != (want, want):
                mismatches.append((spec.text, [sorted(x) for x in trace], want, got))
    print(f"\nMONA differential: {n_formulas} formulas (depth {depth}), {checked} traces, "
          f"mona {mona_s:.1f}s, total {time.perf_counter() - start:.1f}s")
    assert not mismatches, mismatches[:5]


def test_mona_agrees_on_1000_random_formulas():
    _differential(n_formulas=1000, seed=0, depth=4, traces_per_formula=5)


def test_mona_agrees_with_five_atoms():
    """32 letters: successors are found by splitting letter groups, not letter by letter."""
    _differential(n_formulas=200, seed=2, depth=4, traces_per_formula=5,
                  atoms=("a", "b", "c", "d", "e"))


@pytest.mark.slow
def test_mona_agrees_on_10000_random_formulas():
    _differential(n_formulas=10_000, seed=1, depth=5, traces_per_formula=5)


def test_mona_encoding_spot_checks():
    require_mona()
    cases = ["a U b", "X a", "WX a", "G(a -> X b)", "F G a", "a W b", "a R b", "true", "false"]
    specs = [LTLf(t) for t in cases]
    order = [sorted(s.atoms) for s in specs]
    monas = run_mona([ltlf_to_mona(s.node, o) for s, o in zip(specs, order, strict=True)], order)
    one = [frozenset({"a"})]
    assert [m.accepts(one) for m in monas] == [False, False, True, False, True, True, False,
                                               True, False]


def test_mona_oracle_has_teeth():
    """A deliberately wrong pairing (X against WX, U against W) is caught by the oracle."""
    require_mona()
    letters = alphabet_of(frozenset(ATOMS), None)
    wrong = [("X a", "WX a"), ("a U b", "a W b"), ("F a", "G a")]
    specs = [(LTLf(x), LTLf(y)) for x, y in wrong]
    order = [sorted(x.atoms | y.atoms) for x, y in specs]
    monas = run_mona([ltlf_to_mona(y.node, o) for (_, y), o in zip(specs, order, strict=True)],
                     order)
    for (ours, _), mona in zip(specs, monas, strict=True):
        assert difference(ours.to_dfa(letters), mona.to_dfa(letters)) is not None
