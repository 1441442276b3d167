"""Random LTLf formulas and traces for the engine's tests (seeded; hypothesis strategies too).

Usage: ``random_formula(random.Random(0), ("a", "b"), depth=4)``
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

from experiments.bench_ltl import BINARY, UNARY, random_formula

__all__ = ["formulas", "random_formula", "random_trace", "traces"]


def random_trace(rng: random.Random, atoms: Sequence[str], max_len: int) -> list[frozenset[str]]:
    """A non-empty random trace of at most ``max_len`` letters over ``atoms``."""
    return [frozenset(a for a in atoms if rng.random() < 0.5)
            for _ in range(rng.randint(1, max_len))]


def formulas(atoms: Sequence[str] = ("a", "b", "c"), max_leaves: int = 8):
    """Hypothesis strategy of formula texts over ``atoms``."""
    leaves = st.sampled_from((*atoms, "true", "false"))

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(children, st.sampled_from(BINARY), children).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def traces(atoms: Sequence[str] = ("a", "b", "c"), max_len: int = 7):
    """Hypothesis strategy of non-empty traces over ``atoms``."""
    return st.lists(st.frozensets(st.sampled_from(tuple(atoms))), min_size=1, max_size=max_len)
