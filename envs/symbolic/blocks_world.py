"""BlocksWorld: a one-handed robot stacking coloured blocks on table locations.

Usage: ``from envs.symbolic import BlocksWorld; d = BlocksWorld(); s = d.initial();
d.apply(s, "pick(red)")``

Blocks sit on a location (``left``, ``center``, ``right``; at most one block directly on each)
or on another block. Steps: ``pick(x)`` needs the hand empty and ``x`` clear (nothing on it);
``place(x, y)`` needs the robot holding ``x`` and ``y`` clear (a block or a location). Atoms:
``holding_<x>`` and ``<x>_on_<y>``.

Letters: the labels of every reachable state, enumerated by BFS (every arrangement is
reachable): 96 for 3 blocks and 3 locations, 600 for the default 4 blocks.
Formulas mention few atoms, so planners project these letters onto a formula's atoms before
building its DFA.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from envs.symbolic.base import InvalidStateError, InvalidStepError, SymbolicDomain

_PICK = re.compile(r"pick\(([a-z]+)\)\Z")
_PLACE = re.compile(r"place\(([a-z]+), ?([a-z]+)\)\Z")


@dataclass(frozen=True, order=True)
class BlocksState:
    """A BlocksWorld state.

    Attributes:
        on: Sorted pairs ``(x, y)``: block ``x`` rests directly on block or location ``y``.
        holding: The block in the hand, or None.
    """

    on: tuple[tuple[str, str], ...]
    holding: str | None = None


class BlocksWorld(SymbolicDomain):
    """Blocks and table locations with pick/place steps.

    Args:
        blocks: Block names (lowercase letters only).
        locations: Table location names (lowercase letters only).
    """

    name = "blocks_world"

    def __init__(self, blocks: tuple[str, ...] = ("red", "blue", "green", "yellow"),
                 locations: tuple[str, ...] = ("left", "center", "right")) -> None:
        names = (*blocks, *locations)
        if len(set(names)) != len(names) or not all(re.fullmatch("[a-z]+", n) for n in names):
            raise ValueError(f"blocks and locations must be distinct lowercase words, got {names}")
        if not blocks or not locations:
            raise ValueError("blocks and locations must both be non-empty")
        self.blocks = tuple(blocks)
        self.locations = tuple(locations)
        self._states: tuple[BlocksState, ...] | None = None

    def __repr__(self) -> str:
        return f"BlocksWorld(blocks={self.blocks}, locations={self.locations})"

    @property
    def atoms(self) -> frozenset[str]:
        """``holding_<x>`` and ``<x>_on_<y>`` for every block x and support y != x."""
        out = {f"holding_{b}" for b in self.blocks}
        out |= {f"{x}_on_{y}" for x in self.blocks for y in (*self.blocks, *self.locations)
                if x != y}
        return frozenset(out)

    def label(self, state: BlocksState) -> frozenset[str]:
        """On-relations and the held block."""
        out = {f"{x}_on_{y}" for x, y in state.on}
        if state.holding is not None:
            out.add(f"holding_{state.holding}")
        return frozenset(out)

    def steps(self) -> tuple[str, ...]:
        """Every ``pick(x)`` and ``place(x, y)``."""
        picks = [f"pick({x})" for x in self.blocks]
        places = [f"place({x}, {y})" for x in self.blocks
                  for y in (*self.blocks, *self.locations) if x != y]
        return tuple(sorted(picks + places))

    def initial(self) -> BlocksState:
        """All blocks in one tower on the first location, in the given order bottom-up."""
        on = [(self.blocks[0], self.locations[0])]
        on += [(b, a) for a, b in zip(self.blocks, self.blocks[1:], strict=False)]
        return BlocksState(tuple(sorted(on)))

    def make_state(self, stacks: dict[str, list[str]], holding: str | None = None
                   ) -> BlocksState:
        """Build a state from ``{location: [bottom, ..., top]}``.

        Raises:
            ValueError: If a block is missing, repeated or a location unknown.
        """
        on, seen = [], [] if holding is None else [holding]
        for loc, stack in stacks.items():
            if loc not in self.locations:
                raise ValueError(f"stacks: unknown location {loc!r}; known {self.locations}")
            below = loc
            for b in stack:
                on.append((b, below))
                seen.append(b)
                below = b
        if sorted(seen) != sorted(self.blocks):
            raise ValueError(f"stacks/holding must place each of {self.blocks} once, got {seen}")
        return BlocksState(tuple(sorted(on)), holding)

    def validate_state(self, state: BlocksState) -> BlocksState:
        """Return ``state`` (its pairs sorted) if it is a physical arrangement of these blocks.

        Every block must be held or rest on exactly one known support, each support carries at
        most one block, the held block carries nothing, and every stack stands on a location.

        Raises:
            TypeError: If ``state`` is not a :class:`BlocksState` of string pairs.
            InvalidStateError: If it names an unknown block or support, or the arrangement is
                impossible (the message says which).
        """
        if not isinstance(state, BlocksState):
            raise TypeError(f"a BlocksWorld state must be a BlocksState, got "
                            f"{type(state).__name__} {state!r}")
        on, held = state.on, state.holding
        if not isinstance(on, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, str) for v in p)
                for p in on):
            raise TypeError(f"BlocksState.on must be a tuple of (block, support) string pairs, "
                            f"got {on!r}")
        if held is not None and not isinstance(held, str):
            raise TypeError(f"BlocksState.holding must be a block name or None, got {held!r}")
        supports = (*self.blocks, *self.locations)
        for x, y in on:
            if x not in self.blocks:
                raise InvalidStateError(f"state names an unknown block {x!r} (in {x!r} on "
                                        f"{y!r}); blocks are {self.blocks}")
            if y not in supports or y == x:
                raise InvalidStateError(f"state puts {x!r} on {y!r}, which is not another block "
                                        f"or a location; supports are {supports}")
        if held is not None and held not in self.blocks:
            raise InvalidStateError(f"state holds an unknown block {held!r}; blocks are "
                                    f"{self.blocks}")
        placed = [x for x, _ in on] + ([] if held is None else [held])
        if sorted(placed) != sorted(self.blocks):
            missing = sorted(set(self.blocks) - set(placed))
            twice = sorted({b for b in placed if placed.count(b) > 1})
            raise InvalidStateError(f"state must place each block once (on a support or in the "
                                    f"hand): missing {missing}, more than once {twice}")
        below = [y for _, y in on]
        crowded = sorted({y for y in below if below.count(y) > 1})
        if crowded:
            raise InvalidStateError(f"more than one block directly on {crowded}")
        if held is not None and held in below:
            raise InvalidStateError(f"the held block {held!r} has a block on it")
        support = dict(on)
        for x in self.blocks:
            cur, seen = x, set()
            while cur in support:
                if cur in seen:
                    raise InvalidStateError(f"blocks {sorted(seen)} rest on each other in a "
                                            "cycle")
                seen.add(cur)
                cur = support[cur]
            if cur not in self.locations:
                raise InvalidStateError(f"the stack under {x!r} does not stand on a location")
        return state if list(on) == sorted(on) else BlocksState(tuple(sorted(on)), held)

    @staticmethod
    def _covered(state: BlocksState) -> set[str]:
        return {y for _, y in state.on}

    def apply(self, state: BlocksState, step: str) -> BlocksState:
        """Pick a clear block with an empty hand, or place the held block on a clear support."""
        step = step.strip()
        if m := _PICK.match(step):
            x = m.group(1)
            if x not in self.blocks:
                raise InvalidStepError(f"unknown block {x!r}; blocks are {self.blocks}")
            if state.holding is not None:
                raise InvalidStepError(f"cannot pick {x}: already holding {state.holding}")
            if x in self._covered(state):
                raise InvalidStepError(f"cannot pick {x}: something is on it")
            return BlocksState(tuple(p for p in state.on if p[0] != x), x)
        if m := _PLACE.match(step):
            x, y = m.group(1), m.group(2)
            if x not in self.blocks or y not in (*self.blocks, *self.locations) or x == y:
                raise InvalidStepError(f"bad place({x}, {y}) for {self!r}")
            if state.holding != x:
                raise InvalidStepError(f"cannot place {x}: not holding it")
            if y in self._covered(state):
                raise InvalidStepError(f"cannot place {x} on {y}: {y} is not clear")
            return BlocksState(tuple(sorted((*state.on, (x, y)))), None)
        raise InvalidStepError(f"not a BlocksWorld step: {step!r} (pick(x) or place(x, y))")

    def applicable(self, state: BlocksState) -> tuple[str, ...]:
        """Executable picks (hand empty) or places (holding)."""
        covered = self._covered(state)
        if state.holding is None:
            return tuple(f"pick({x})" for x in self.blocks if x not in covered)
        x = state.holding
        return tuple(f"place({x}, {y})" for y in sorted((*self.blocks, *self.locations))
                     if y != x and y not in covered)

    def states(self) -> tuple[BlocksState, ...]:
        """Every reachable state (BFS from ``initial()``; the state graph is connected)."""
        if self._states is None:
            seen = {self.initial()}
            queue = deque(seen)
            while queue:
                s = queue.popleft()
                for _, nxt in self.successors(s):
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            self._states = tuple(sorted(seen, key=lambda s: (s.holding or "", s.on)))
        return self._states

    def stacks(self, state: BlocksState) -> dict[str, list[str]]:
        """``{location: [bottom, ..., top]}`` for every location (empty lists included)."""
        above = {y: x for x, y in state.on}
        out = {}
        for loc in self.locations:
            stack, cur = [], loc
            while cur in above:
                cur = above[cur]
                stack.append(cur)
            out[loc] = stack
        return out

    def describe(self, state: BlocksState) -> str:
        """Stacks bottom-up and the hand, e.g. ``left: red blue. center: -. hand: empty.``."""
        parts = [f"{loc}: {' '.join(s) if s else '-'}." for loc, s in self.stacks(state).items()]
        parts.append(f"hand: {state.holding or 'empty'}.")
        return " ".join(parts)
