"""Plan checking and optimal plans: search over the product of a domain and a spec's DFA.

Usage: ``from planners.check import check_plan; check_plan(domain, steps, "F(lab)", start)``

The product state after executing steps 1..i is ``(s_i, q_i)`` where ``q_i`` is the DFA state
after reading the labels of s0..s_i (the DFA reads the whole trace, s0 included). A plan
satisfies the spec iff its final DFA state is accepting. :class:`ProductGraph` explores the
product from the initial state and stores, for each product state, the fewest further steps
to an accepting one; the constrained decoder uses the same table, so it can never steer into a
state from which the spec is unreachable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from envs.symbolic import SymbolicDomain
from envs.symbolic.base import shortest_path


class UnsatisfiableSpecError(ValueError):
    """No plan in the domain, from the given state, satisfies the specification."""


class UnknownAtomError(ValueError):
    """A specification mentions atoms the domain does not have."""


def spec_dfa(domain: SymbolicDomain, ltl):
    """Parse ``ltl`` (text or ``LTLf``) and build its minimized DFA over the domain's letters.

    The domain's letters are projected onto the formula's atoms first (the DFA only reads those),
    which keeps the alphabet small for domains with hundreds of distinct labels.

    Raises:
        UnknownAtomError: If the formula uses atoms the domain lacks (the message lists them and
            the domain's atoms).
    """
    from planners.ltl import LTLf

    spec = ltl if isinstance(ltl, LTLf) else LTLf(str(ltl))
    unknown = sorted(spec.atoms - domain.atoms)
    if unknown:
        raise UnknownAtomError(f"ltl uses atoms {unknown} that {domain!r} does not have; its "
                               f"atoms are: {', '.join(sorted(domain.atoms))}")
    letters = sorted({letter & spec.atoms for letter in domain.letters()}, key=sorted)
    return spec.to_dfa(alphabet=letters)


class ProductGraph:
    """Reachable product of a domain and a DFA from one initial state, with distances.

    Args:
        domain: The symbolic domain.
        dfa: A DFA whose alphabet covers the domain's labels (restricted to its atoms).
        start: The initial domain state s0.

    Attributes:
        root: The product state ``(s0, q0)`` after reading s0's label.
        succ: For each product state, the tuple of ``(step, next_product_state)``.
        dist: Fewest steps from each product state to an accepting one (absent: never).
    """

    def __init__(self, domain: SymbolicDomain, dfa, start: Hashable) -> None:
        self.domain, self.dfa = domain, dfa
        start = domain.validate_state(start)
        self.root = (start, dfa.step(dfa.initial, domain.label(start)))
        self.succ: dict[tuple, tuple[tuple[str, tuple], ...]] = {}
        # Each state's label restricted to the DFA's atoms: a letter of its alphabet as is.
        label_cache: dict[Hashable, frozenset[str]] = {}
        atoms = getattr(dfa, "atoms", None)
        queue = deque([self.root])
        self.succ[self.root] = ()
        order = [self.root]
        while queue:
            node = queue.popleft()
            s, q = node
            out = []
            for step, nxt in domain.successors(s):
                if nxt not in label_cache:
                    lab = domain.label(nxt)
                    label_cache[nxt] = lab if atoms is None else lab & atoms
                pair = (nxt, dfa.step(q, label_cache[nxt]))
                out.append((step, pair))
                if pair not in self.succ:
                    self.succ[pair] = ()
                    order.append(pair)
                    queue.append(pair)
            self.succ[node] = tuple(out)
        preds: dict[tuple, list[tuple]] = {n: [] for n in order}
        for node, out in self.succ.items():
            for _, nxt in out:
                preds[nxt].append(node)
        self.dist: dict[tuple, int] = {n: 0 for n in order if n[1] in dfa.accepting}
        queue = deque(self.dist)
        while queue:
            node = queue.popleft()
            for p in preds[node]:
                if p not in self.dist:
                    self.dist[p] = self.dist[node] + 1
                    queue.append(p)

    def shortest_plan(self) -> list[str] | None:
        """A shortest satisfying plan (greedy descent along ``dist``), or None if none exists."""
        node = self.root
        if node not in self.dist:
            return None
        plan: list[str] = []
        while self.dist[node] > 0:
            step, node = min(((st, n) for st, n in self.succ[node] if n in self.dist),
                             key=lambda sn: self.dist[sn[1]])
            plan.append(step)
        return plan


def token_distances(graph: ProductGraph, cost: dict[str, int], max_steps: int | None
                    ) -> list[dict[tuple, int]]:
    """Fewest step tokens from each product node to acceptance, within k steps, for each k.

    ``layers[k][node]`` is the fewest tokens (the sum of ``cost[step]`` over the steps taken)
    of a path of at most ``k`` steps from ``node`` to an accepting product node (absent: none).
    Layers stop at ``max_steps`` or where they stop changing (the last layer then holds for
    every larger ``k``): a Bellman-Ford relaxation, ``O(max_steps x edges)``.
    """
    live = graph.dist
    layer = {n: 0 for n, d in live.items() if d == 0}
    layers = [layer]
    edges = [(n, [(cost[s], m) for s, m in graph.succ[n] if m in live]) for n in live]
    while max_steps is None or len(layers) <= max_steps:
        nxt = {}
        for n, out in edges:
            best = layer.get(n, math.inf)
            for c, m in out:
                d = layer.get(m)
                if d is not None and c + d < best:
                    best = c + d
            if best < math.inf:
                nxt[n] = best
        if nxt == layer:
            break
        layers.append(nxt)
        layer = nxt
    return layers


def shortest_plan(domain: SymbolicDomain, ltl, start: Hashable) -> list[str] | None:
    """A shortest valid plan from ``start`` whose trace satisfies ``ltl`` (None if none).

    Breadth-first search over domain state x DFA state that stops at the first accepting
    product state (cheaper than building the whole :class:`ProductGraph`).
    """
    start = domain.validate_state(start)
    dfa = spec_dfa(domain, ltl)
    root = (start, dfa.step(dfa.initial, domain.label(start) & dfa.atoms))

    def successors(node: tuple) -> list[tuple[str, tuple]]:
        return [(step, (nxt, dfa.step(node[1], domain.label(nxt) & dfa.atoms)))
                for step, nxt in domain.successors(node[0])]

    return shortest_path(root, successors, goal=lambda node: node[1] in dfa.accepting,
                         forbidden=lambda node: node[1] not in dfa.live)


@dataclass(frozen=True)
class PlanCheck:
    """Verdict on one plan.

    Attributes:
        valid: Every step was executable.
        safe: Valid and the trace satisfies the whole specification.
        success: Valid and the trace satisfies the goal formula (goals reached).
        length: Number of steps.
        optimal_length: Length of a shortest valid satisfying plan (None if unsatisfiable).
        efficiency: ``optimal_length / length`` for safe plans (1.0 for an optimal plan; an
            empty plan that is already optimal counts 1.0), None otherwise.
        failed_index: Index of the first non-executable step, or None.
    """

    valid: bool
    safe: bool
    success: bool
    length: int
    optimal_length: int | None
    efficiency: float | None
    failed_index: int | None = None


def check_plan(domain: SymbolicDomain, steps: Sequence[str], ltl, start: Hashable,
               goal_ltl=None) -> PlanCheck:
    """Check a plan: valid, safe (spec satisfied), success (goals reached), efficiency.

    Args:
        domain: The domain.
        steps: The plan's step strings.
        ltl: The specification (text or ``LTLf``).
        start: The initial state s0.
        goal_ltl: The goal formula alone; defaults to ``ltl``.

    Returns:
        The :class:`PlanCheck`.
    """
    from planners.ltl import LTLf

    spec = ltl if isinstance(ltl, LTLf) else LTLf(str(ltl))
    goal = spec if goal_ltl is None else (goal_ltl if isinstance(goal_ltl, LTLf)
                                          else LTLf(str(goal_ltl)))
    run = domain.execute(start, list(steps))
    trace = domain.trace(run.states)
    safe = run.valid and spec.accepts(trace)
    success = run.valid and goal.accepts(trace)
    best = shortest_plan(domain, spec, start)
    optimal = None if best is None else len(best)
    eff = None
    if safe and optimal is not None:
        eff = 1.0 if len(steps) == 0 else optimal / len(steps)
    return PlanCheck(run.valid, safe, success, len(steps), optimal, eff, run.failed_index)
