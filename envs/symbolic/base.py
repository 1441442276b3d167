"""The contract every symbolic planning domain follows, plus plan execution and tasks.

A domain is a finite transition system over hashable states. Each state has a *label*: the set
of atoms true in it (``kitchen`` = the drone is in the kitchen, ``holding_red``). A step is a
string such as ``fly_to(kitchen)``; a plan is a list of steps, and its trace is the state
sequence s0 (the initial state), s1, ..., sn that executing it visits.

This module imports nothing of robodecode: checking plans against LTLf formulas and searching
for optimal plans live in ``planners``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

State = Hashable


class InvalidStepError(ValueError):
    """A step that cannot be parsed or whose preconditions do not hold in the current state."""


class InvalidStateError(ValueError):
    """A value that is not a state of the domain (an unknown room, a block that does not exist)."""


@dataclass(frozen=True)
class Execution:
    """The result of executing a plan from a state.

    Attributes:
        states: The visited states s0..sk; for an invalid plan it stops at the state in which
            the failing step was attempted.
        valid: True iff every step was executable.
        failed_index: Index of the first non-executable step, or None.
        error: Why that step failed (empty when valid).
    """

    states: tuple[State, ...]
    valid: bool
    failed_index: int | None = None
    error: str = ""


class SymbolicDomain(ABC):
    """A finite symbolic planning domain: states, labels, steps with preconditions/effects."""

    #: Registry name (``drone_nav``, ``blocks_world``).
    name: str = ""

    @property
    @abstractmethod
    def atoms(self) -> frozenset[str]:
        """Every atom a state of this domain can make true."""

    @abstractmethod
    def label(self, state: State) -> frozenset[str]:
        """Atoms true in ``state``."""

    @abstractmethod
    def steps(self) -> tuple[str, ...]:
        """Every ground step string of the domain, executable or not (sorted)."""

    @abstractmethod
    def apply(self, state: State, step: str) -> State:
        """Return the successor of ``state`` under ``step``.

        Raises:
            InvalidStepError: If ``step`` is malformed or its preconditions fail in ``state``.
        """

    @abstractmethod
    def states(self) -> tuple[State, ...]:
        """Every state of the domain (for large domains: every reachable one)."""

    @abstractmethod
    def describe(self, state: State) -> str:
        """A one-line text description of ``state`` used in LM prompts."""

    def validate_state(self, state: State) -> State:
        """Return ``state`` in canonical form if it is a state of this domain.

        The default checks membership in :meth:`states`; domains override it with checks that
        name what is wrong.

        Raises:
            TypeError: If ``state`` is not hashable.
            InvalidStateError: If ``state`` is not one of the domain's states.
        """
        known = self.__dict__.get("_state_set_memo")
        if known is None:
            known = self._state_set_memo = frozenset(self.states())
        try:
            ok = state in known
        except TypeError:
            raise TypeError(f"a state of {self!r} must be hashable, got "
                            f"{type(state).__name__}") from None
        if not ok:
            raise InvalidStateError(f"{state!r} is not a state of {self!r}")
        return state

    def applicable(self, state: State) -> tuple[str, ...]:
        """The steps executable in ``state`` (default: try every step)."""
        out = []
        for step in self.steps():
            try:
                self.apply(state, step)
            except InvalidStepError:
                continue
            out.append(step)
        return tuple(out)

    def successors(self, state: State) -> tuple[tuple[str, State], ...]:
        """Pairs ``(step, next_state)`` for every executable step in ``state`` (memoized)."""
        memo = self.__dict__.setdefault("_successors_memo", {})
        out = memo.get(state)
        if out is None:
            out = memo[state] = tuple((s, self.apply(state, s)) for s in self.applicable(state))
        return out

    def letters(self) -> tuple[frozenset[str], ...]:
        """The distinct labels the domain's states can have (the LTL alphabet), sorted."""
        if "_letters_memo" not in self.__dict__:
            self._letters_memo = tuple(sorted({self.label(s) for s in self.states()}, key=sorted))
        return self._letters_memo

    def execute(self, state: State, plan: Sequence[str]) -> Execution:
        """Execute ``plan`` from ``state``, stopping at the first non-executable step.

        Raises:
            TypeError: If ``plan`` is a single string rather than a sequence of steps, or
                ``state`` has the wrong type.
            InvalidStateError: If ``state`` is not a state of the domain.
        """
        if isinstance(plan, (str, bytes)):
            raise TypeError(f"plan must be a sequence of step strings, got a string {plan!r}")
        state = self.validate_state(state)
        states = [state]
        for i, step in enumerate(plan):
            try:
                state = self.apply(state, step)
            except InvalidStepError as err:
                return Execution(tuple(states), False, i, str(err))
            states.append(state)
        return Execution(tuple(states), True)

    def trace(self, states: Iterable[State]) -> list[frozenset[str]]:
        """Labels of a state sequence: the LTLf trace of a plan execution."""
        return [self.label(s) for s in states]

    def reachable(self, start: State, goal: Callable[[State], bool],
                  forbidden: Callable[[State], bool] = lambda s: False) -> list[str] | None:
        """Shortest step list from ``start`` to a state satisfying ``goal`` (BFS).

        States for which ``forbidden`` holds are never entered (nor may ``start`` be one).

        Returns:
            The steps, or None when no such path exists.
        """
        return shortest_path(start, self.successors, goal, forbidden)
        parent: dict[State, tuple[State, str] | None] = {start: None}
        queue = deque([start])
        while queue:
            s = queue.popleft()
            if goal(s):
                path: list[str] = []
                while parent[s] is not None:
                    s, step = parent[s]  # type: ignore[misc]
                    path.append(step)
                return path[::-1]
            for step, nxt in self.successors(s):
                if nxt not in parent and not forbidden(nxt):
                    parent[nxt] = (s, step)
                    queue.append(nxt)
        return None


def shortest_path(start: Hashable, successors: Callable[[Any], Iterable[tuple[str, Any]]],
                  goal: Callable[[Any], bool],
                  forbidden: Callable[[Any], bool] = lambda s: False) -> list[str] | None:
    """Shortest step list from ``start`` to a node satisfying ``goal`` (breadth-first search).

    Args:
        start: The first node.
        successors: ``node -> [(step, next_node), ...]``.
        goal: Whether a node ends the search.
        forbidden: Nodes never entered (``start`` included).

    Returns:
        The steps, or None when no such path exists.
    """
    if forbidden(start):
        return None
    parent: dict[Any, tuple[Any, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if goal(node):
            path: list[str] = []
            while parent[node] is not None:
                node, step = parent[node]  # type: ignore[misc]
                path.append(step)
            return path[::-1]
        for step, nxt in successors(node):
            if nxt not in parent and not forbidden(nxt):
                parent[nxt] = (node, step)
                queue.append(nxt)
    return None


@dataclass(frozen=True)
class Task:
    """A generated planning task.

    Attributes:
        domain: The domain instance (e.g. one building layout).
        instruction: Natural-language instruction.
        ltl: Ground-truth LTLf formula text of the whole specification.
        goal_ltl: LTLf text of the goals alone (used for "success": goals reached).
        initial_state: The state the plan starts from.
        template: Name of the instruction template used.
        split: ``"train"`` or ``"heldout"``.
        info: Extra fields (pattern, chosen atoms) for analysis.
    """

    domain: SymbolicDomain
    instruction: str
    ltl: str
    goal_ltl: str
    initial_state: State
    template: str
    split: str
    info: dict[str, Any] = field(default_factory=dict)


def check_split(split: str) -> str:
    """Validate a split name."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return split


def words(atom: str) -> str:
    """The natural-language form of an atom name (``server_room`` -> ``server room``)."""
    return atom.replace("_", " ")
