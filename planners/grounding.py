"""Grounding functions: soft, weighted scores of a plan's next step in the current state.

Usage::

    from planners.grounding import Affordance, Cost, GoalProgress, Safety
    groundings = [(1.0, Affordance()), (1.0, Safety()), (0.5, Cost()), (1.0, GoalProgress())]

Grounded decoding (Huang et al. 2023) scores a plan token by ``log p_LM + sum_i w_i log G_i``.
A grounding function is any callable ``g(ctx, step) -> float`` returning ``log G``: 0 for a
step it fully approves, negative for a worse one, ``-inf`` to forbid it. ``step`` is a step
string of the domain, or None for "end the plan here". ``ctx`` is the :class:`PlanContext`:
the current domain state after executing the plan so far, the visited states, the spec and
its product-graph node when a spec is given. The decoder scores a partial step by its best
completion, so functions only ever see whole steps.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from envs.symbolic import InvalidStepError, SymbolicDomain
from envs.symbolic.features import goal_distance, step_cost


@dataclass(frozen=True)
class PlanContext:
    """What a grounding function may look at when scoring the next step.

    Attributes:
        domain: The symbolic domain.
        state: The domain state after the steps so far.
        steps: The steps written so far.
        visited: The states s0..s_now (``visited[-1] == state``).
        steps_left: Steps the budget still allows (the next one included).
        ltl: The spec (``LTLf``) or None.
        graph: The spec's :class:`planners.check.ProductGraph` from s0, or None.
        node: The current product node ``(state, dfa_state)`` in ``graph``, or None.
    """

    domain: SymbolicDomain
    state: Hashable
    steps: tuple[str, ...]
    visited: tuple[Hashable, ...]
    steps_left: int
    ltl: Any = None
    graph: Any = None
    node: tuple | None = None

    def next_node(self, step: str) -> tuple | None:
        """The product node after ``step`` (None without a graph or if not executable)."""
        if self.graph is None:
            return None
        return dict(self.graph.succ.get(self.node, ())).get(step)


class GroundingFunction(Protocol):
    """One method: ``log G`` of ``step`` (None: end the plan) given ``ctx``."""

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """Return a log-score in ``[-inf, 0]`` (0: fine; ``-inf``: forbidden)."""


def _check_log(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value) or value > 0:
        raise ValueError(f"{name} must be a log-score <= 0 (or -inf), got {value!r}")
    return float(value)


class Affordance:
    """The step's preconditions hold in the current state.

    Args:
        penalty: ``log G`` of a non-executable step (``-inf``: hard).
    """

    def __init__(self, penalty: float = math.log(1e-4)) -> None:
        self.penalty = _check_log(penalty, "penalty")

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """0 if ``step`` is executable (or ends the plan), else ``penalty``."""
        if step is None:
            return 0.0
        try:
            ctx.domain.apply(ctx.state, step)
        except InvalidStepError:
            return self.penalty
        return 0.0


class Safety:
    """The spec's automaton stays live: acceptance remains reachable within the step budget.

    Soft by default; ``hard=True`` forbids dead steps (and ending before acceptance), the same
    set of steps as :class:`planners.LTLLogitsProcessor`'s step-budget mask. Without a spec it
    scores 0.

    Args:
        penalty: ``log G`` of a step that kills the spec (soft mode).
        hard: Forbid such steps (``-inf``).
    """

    def __init__(self, penalty: float = math.log(1e-3), hard: bool = False) -> None:
        self.penalty = -math.inf if hard else _check_log(penalty, "penalty")
        self.hard = hard

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """0 if acceptance stays reachable after ``step`` (None: the plan is accepted now)."""
        if ctx.graph is None:
            return 0.0
        if step is None:
            return 0.0 if ctx.node[1] in ctx.graph.dfa.accepting else self.penalty
        nxt = ctx.next_node(step)
        dist = None if nxt is None else ctx.graph.dist.get(nxt)
        return 0.0 if dist is not None and dist <= ctx.steps_left - 1 else self.penalty


class Cost:
    """Minus the step's physical cost (:func:`envs.symbolic.features.step_cost`).

    Ending the plan costs 0, so a positive weight also favours stopping once done.
    Non-executable steps score 0 here (:class:`Affordance` judges them).
    """

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """``-step_cost`` (0 for ending the plan or a non-executable step)."""
        if step is None:
            return 0.0
        try:
            return -step_cost(ctx.domain, ctx.state, step)
        except InvalidStepError:
            return 0.0


def positive_atoms(ltl) -> list[str]:
    """Atoms the spec wants to hold somewhere: the non-negated atoms of its NNF, sorted."""
    from planners.ltl_nnf import nnf

    out: list[str] = []

    def walk(node) -> None:
        if node.op == "atom" and node.name not in out:
            out.append(node.name)
        for arg in node.args:
            walk(arg)

    walk(nnf(ltl.node))
    return sorted(out)


class GoalProgress:
    """A heuristic preference: move towards the spec's goal atoms not reached yet.

    ``log G`` is the drop of ``sum goal_distance`` over the unreached targets (reaching a target
    removes it), minus that drop's best possible value 1, capped at 0. Targets default to the
    positive atoms of the spec (:func:`positive_atoms`).

    Args:
        targets: Atoms to reach (default: from ``ctx.ltl``; none without a spec).
    """

    def __init__(self, targets: Sequence[str] | None = None) -> None:
        if isinstance(targets, str):
            raise TypeError("targets must be a sequence of atom names, not a str")
        self.targets = None if targets is None else tuple(targets)
        self._memo: dict[Any, tuple[str, ...]] = {}

    def _targets(self, ctx: PlanContext) -> tuple[str, ...]:
        if self.targets is not None:
            return self.targets
        if ctx.ltl is None:
            return ()
        key = str(ctx.ltl)
        if key not in self._memo:
            self._memo[key] = tuple(positive_atoms(ctx.ltl))
        return self._memo[key]

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """Progress towards the unreached targets (0 for the best step, more negative else)."""
        targets = self._targets(ctx)
        seen = set().union(*(ctx.domain.label(s) for s in ctx.visited))
        open_ = [a for a in targets if a not in seen]
        if not open_:
            return 0.0
        if step is None:
            return -1.0 * len(open_)
        try:
            nxt = ctx.domain.apply(ctx.state, step)
        except InvalidStepError:
            return 0.0
        now = sum(goal_distance(ctx.domain, ctx.state, a) for a in open_)
        reached = ctx.domain.label(nxt)
        after = sum(goal_distance(ctx.domain, nxt, a) for a in open_ if a not in reached)
        return min(0.0, (now - after) - 1.0)


class NoRevisit:
    """A heuristic preference: do not return to a state the plan already visited (loops).

    Args:
        penalty: ``log G`` of a step back into a visited state.
    """

    def __init__(self, penalty: float = -2.0) -> None:
        self.penalty = _check_log(penalty, "penalty")

    def __call__(self, ctx: PlanContext, step: str | None) -> float:
        """``penalty`` if ``step`` leads to a visited state, else 0."""
        if step is None:
            return 0.0
        try:
            nxt = ctx.domain.apply(ctx.state, step)
        except InvalidStepError:
            return 0.0
        return self.penalty if nxt in ctx.visited else 0.0


Weighted = tuple[float, GroundingFunction]


def check_groundings(groundings: Sequence[Weighted]) -> list[Weighted]:
    """Validate a ``[(weight, function), ...]`` list.

    Raises:
        TypeError: If an entry is not a ``(number, callable)`` pair.
        ValueError: If a weight is negative or not finite.
    """
    if isinstance(groundings, (str, bytes)) or not isinstance(groundings, Sequence):
        raise TypeError(f"groundings must be a list of (weight, function) pairs, got "
                        f"{groundings!r}")
    out = []
    for i, entry in enumerate(groundings):
        if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[1])):
            raise TypeError(f"groundings[{i}] must be a (weight, function) pair, got {entry!r}")
        w = entry[0]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) \
                or w < 0:
            raise ValueError(f"groundings[{i}] weight must be a finite number >= 0, got {w!r}")
        out.append((float(w), entry[1]))
    return out


def step_scores(ctx: PlanContext, steps: Sequence[str], groundings: Sequence[Weighted]
                ) -> tuple[dict[str, float], float]:
    """``sum_i w_i log G_i`` of every step and of ending the plan (``-inf`` stays ``-inf``).

    Raises:
        ValueError: If a function returns a positive or NaN score.
    """
    def total(step: str | None) -> float:
        out = 0.0
        for w, g in groundings:
            if w == 0:
                continue
            v = g(ctx, step)
            if not isinstance(v, (int, float)) or math.isnan(v) or v > 1e-9:
                raise ValueError(f"grounding function {g!r} returned {v!r} for {step!r}; it "
                                 "must return a log-score <= 0 (or -inf)")
            out += w * v if v != -math.inf else -math.inf
        return out

    return {s: total(s) for s in steps}, total(None)
