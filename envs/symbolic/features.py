"""Local step features of the symbolic domains: move costs and goal-distance heuristics.

Usage: ``from envs.symbolic.features import step_cost, goal_distance;
step_cost(domain, state, "fly_to(kitchen)"); goal_distance(domain, state, "kitchen")``

Both are computed from the domain's own geometry (the building graph, the block stacks) and
never search over plans: they are what a user writes as a grounding function's features.
"""

from __future__ import annotations

import re
from collections import deque

from envs.symbolic.base import InvalidStepError, State, SymbolicDomain
from envs.symbolic.blocks_world import BlocksState, BlocksWorld
from envs.symbolic.drone_nav import DroneNav

_ON = re.compile(r"([a-z]+)_on_([a-z]+)\Z")
_HOLD = re.compile(r"holding_([a-z]+)\Z")


def step_cost(domain: SymbolicDomain, state: State, step: str) -> float:
    """The physical cost of one step from ``state``.

    DroneNav: 1 per flight plus 1 when it changes floor (stairs). BlocksWorld: 1 per pick or
    place. Other domains: 1 per step.

    Raises:
        InvalidStepError: If ``step`` is not executable in ``state``.
    """
    nxt = domain.apply(state, step)
    if isinstance(domain, DroneNav):
        return 1.0 + float(domain.floor_of[nxt] != domain.floor_of[state])
    return 1.0


def building_distances(domain: DroneNav, target: str) -> dict[str, int]:
    """Flights from every node of ``domain``'s building to ``target`` (BFS, memoized)."""
    memo = domain.__dict__.setdefault("_distance_memo", {})
    if target not in memo:
        dist = {target: 0}
        queue = deque([target])
        while queue:
            node = queue.popleft()
            for nxt in domain.adjacency[node]:
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        memo[target] = dist
    return memo[target]


def _above(state: BlocksState, block: str) -> int:
    """How many blocks sit on top of ``block`` (0 when it is held or clear)."""
    under = {y: x for x, y in state.on}
    n, node = 0, block
    while node in under:
        node, n = under[node], n + 1
    return n


def goal_distance(domain: SymbolicDomain, state: State, atom: str) -> float:
    """An estimate of the steps until ``atom`` holds (0 when it holds now).

    DroneNav: the flights to room ``atom``. BlocksWorld: for ``x_on_y``, two moves per block
    stacked on ``x`` or ``y``, plus picking and placing ``x`` (less what is done); for
    ``holding_x``, two moves per block on ``x`` plus the pick (and putting down what is held).
    An atom the heuristic does not know costs 0.

    Raises:
        InvalidStepError: If ``atom`` is not an atom of ``domain``.
    """
    if atom not in domain.atoms:
        raise InvalidStepError(f"unknown atom {atom!r} for {domain!r}")
    if atom in domain.label(state):
        return 0.0
    if isinstance(domain, DroneNav):
        return float(building_distances(domain, atom).get(state, 0))
    if isinstance(domain, BlocksWorld):
        hand = 0 if state.holding is None else 1
        m = _ON.match(atom)
        if m:
            x, y = m.groups()
            if state.holding == x:
                return 2.0 * _above(state, y) + 1
            free = 2 * (_above(state, x) + _above(state, y))
            return float(free + 2 + hand)
        m = _HOLD.match(atom)
        if m:
            return float(2 * _above(state, m.group(1)) + 1 + hand)
    return 0.0
