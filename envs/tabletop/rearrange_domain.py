"""The symbolic domain of ``TabletopRearrange-v0``: what a planner sees of the tabletop.

Usage: ``domain = RearrangeDomain(); state = domain.observe(env)``;
``domain.apply(state, "put(red,purple)")``; ``domain.instruction("put(red,purple)")`` is the
one-step instruction a VLA policy executes ("put the red block in the purple zone").

A state says where each block rests: in one of the zones or elsewhere on the table (``table``).
One step, ``put(<block>,<zone>)``, moves a block into an empty zone; it is the pick-and-place
skill the scripted expert and the VLA policies have. Atoms are the env's
(``<block>_in_<zone>``), so a plan's symbolic trace and the trace read from the simulator can
be checked against the same LTLf formula. The hand is not modelled: a step starts and ends
with the gripper empty.

:func:`rearrange_task` draws a symbolic task (registered as ``tabletop_rearrange`` in
``envs.symbolic``) from the env's own task sampler, so instructions, formulas and splits are the
simulator's.
"""

from __future__ import annotations

import itertools
import random
import re

import numpy as np

from envs.symbolic.base import InvalidStateError, InvalidStepError, SymbolicDomain, Task
from envs.tabletop import instructions as ins
from envs.tabletop.rearrange_tasks import PHRASINGS, in_atom, sample_rearrange_task

TABLE = "table"
_PUT = re.compile(r"put\(([a-z]+),([a-z]+)\)\Z")

RearrangeState = tuple[tuple[str, str], ...]
"""Sorted ``(block, location)`` pairs, one per block; a location is a zone or ``table``."""


class RearrangeDomain(SymbolicDomain):
    """Blocks and zones of the tabletop, with one ``put(block,zone)`` step per pair.

    Args:
        blocks: Block colours of the scene.
        zones: Zone colours of the scene.
    """

    name = "tabletop_rearrange"

    def __init__(self, blocks: tuple[str, ...] = ins.BLOCK_COLOURS,
                 zones: tuple[str, ...] = ins.ZONE_COLOURS) -> None:
        names = (*blocks, *zones)
        if len(set(names)) != len(names) or not all(re.fullmatch("[a-z]+", n) for n in names):
            raise ValueError(f"blocks and zones must be distinct lowercase words, got {names}")
        self.blocks, self.zones = tuple(blocks), tuple(zones)

    def __repr__(self) -> str:
        return f"RearrangeDomain(blocks={self.blocks}, zones={self.zones})"

    @property
    def atoms(self) -> frozenset[str]:
        """``<block>_in_<zone>`` for every pair."""
        return frozenset(in_atom(b, z) for b in self.blocks for z in self.zones)

    def label(self, state: RearrangeState) -> frozenset[str]:
        """Atoms true in ``state``."""
        return frozenset(in_atom(b, loc) for b, loc in state if loc != TABLE)

    def steps(self) -> tuple[str, ...]:
        """Every ``put(block,zone)`` step, sorted."""
        return tuple(sorted(f"put({b},{z})" for b in self.blocks for z in self.zones))

    def initial(self) -> RearrangeState:
        """Every block on the table (how every episode of the env starts)."""
        return tuple(sorted((b, TABLE) for b in self.blocks))

    def make_state(self, where: dict[str, str]) -> RearrangeState:
        """A state from ``{block: zone}`` (blocks not named rest on the table).

        Raises:
            InvalidStateError: If a block or zone is unknown or two blocks share a zone.
        """
        state = tuple(sorted({**dict.fromkeys(self.blocks, TABLE), **where}.items()))
        return self.validate_state(state)

    def validate_state(self, state: RearrangeState) -> RearrangeState:
        """Check ``state`` names each block once, at a known location, one block per zone."""
        try:
            pairs = tuple(sorted(tuple(p) for p in state))
        except TypeError:
            raise TypeError(f"a state must be (block, location) pairs, got {state!r}") from None
        blocks = [b for b, _ in pairs]
        if sorted(blocks) != sorted(self.blocks):
            raise InvalidStateError(f"a state must place each of {self.blocks} once, got "
                                    f"{blocks}")
        bad = [loc for _, loc in pairs if loc != TABLE and loc not in self.zones]
        if bad:
            raise InvalidStateError(f"unknown location {bad[0]!r}; locations: "
                                    f"{(*self.zones, TABLE)}")
        zones = [loc for _, loc in pairs if loc != TABLE]
        if len(zones) != len(set(zones)):
            raise InvalidStateError(f"two blocks in one zone: {pairs}")
        return pairs

    def apply(self, state: RearrangeState, step: str) -> RearrangeState:
        """Put a block into a zone; the zone must be empty and the block not already there."""
        match = _PUT.match(step)
        if not match or match[1] not in self.blocks or match[2] not in self.zones:
            raise InvalidStepError(f"unknown step {step!r}; steps look like put(red,purple)")
        block, zone = match[1], match[2]
        where = dict(state)
        if where[block] == zone:
            raise InvalidStepError(f"{block} is already in the {zone} zone")
        occupant = next((b for b, loc in where.items() if loc == zone), None)
        if occupant is not None:
            raise InvalidStepError(f"the {zone} zone already holds the {occupant} block")
        where[block] = zone
        return tuple(sorted(where.items()))

    def states(self) -> tuple[RearrangeState, ...]:
        """Every placement of the blocks with at most one block per zone."""
        out = []
        for locs in itertools.product((TABLE, *self.zones), repeat=len(self.blocks)):
            zones = [loc for loc in locs if loc != TABLE]
            if len(zones) == len(set(zones)):
                out.append(tuple(sorted(zip(self.blocks, locs, strict=True))))
        return tuple(out)

    def describe(self, state: RearrangeState) -> str:
        """Zones and what they hold, e.g. ``purple: red. orange: -. white: -.``."""
        where = dict(state)
        return " ".join(f"{z}: {next((b for b in self.blocks if where[b] == z), '-')}."
                        for z in self.zones)

    @staticmethod
    def instruction(step: str) -> str:
        """The one-step instruction a VLA executes for ``step`` (the pick-and-place language)."""
        match = _PUT.match(step)
        if not match:
            raise InvalidStepError(f"unknown step {step!r}; steps look like put(red,purple)")
        return f"put the {match[1]} block in the {match[2]} zone"

    @staticmethod
    def target(step: str) -> tuple[str, str]:
        """``(block, zone)`` of a step."""
        match = _PUT.match(step)
        if not match:
            raise InvalidStepError(f"unknown step {step!r}; steps look like put(red,purple)")
        return match[1], match[2]

    def observe(self, env) -> RearrangeState:
        """The symbolic state of a tabletop env now (privileged simulator state).

        Raises:
            InvalidStateError: If two blocks rest in one zone (not a state of the domain).
        """
        base = getattr(env, "unwrapped", env)
        where = {b: next((z for z in self.zones if base.in_zone(b, z)), TABLE)
                 for b in self.blocks}
        return self.make_state({b: z for b, z in where.items() if z != TABLE})


def rearrange_task(rng: random.Random, split: str, domain: RearrangeDomain,
                   placed: float = 0.3) -> Task | None:
    """One symbolic task drawn by the env's sampler (:func:`sample_rearrange_task`).

    The initial state has every block on the table, as every episode starts; with probability
    ``placed`` one block already rests in a zone (the states a replan starts from). Draws whose
    goal already holds, or whose spec no plan satisfies, give ``None``.

    Args:
        rng: Source of randomness (one numpy seed per task is drawn from it).
        split: ``"train"`` or ``"heldout"`` phrasings and block/zone pairs.
        domain: The domain (its blocks and zones must be the env's).
        placed: Probability of starting with one block in a zone.

    Returns:
        The task (``info``: pattern, placements, avoid zone), or ``None``.
    """
    task = sample_rearrange_task(np.random.default_rng(rng.getrandbits(63)), split)
    start = domain.initial()
    if rng.random() < placed:
        start = domain.make_state({rng.choice(domain.blocks): rng.choice(domain.zones)})
    goal = frozenset(in_atom(b, z) for b, z in task.placements)
    if goal <= domain.label(start):
        return None
    pairs = list(zip(task.placements, task.placements[1:], strict=False))

    def forbidden(state: RearrangeState) -> bool:
        """A state no satisfying plan may visit (conservative for the order conditions)."""
        where = dict(state)
        if task.avoid is not None and task.avoid in where.values():
            return True
        return task.ordered and any(where[b2] == z2 and where[b1] != z1
                                    for (b1, z1), (b2, z2) in pairs)

    if domain.reachable(start, lambda s: goal <= domain.label(s), forbidden) is None:
        return None
    train, held = PHRASINGS[task.pattern]
    name = (f"{task.pattern}/train{train.index(task.phrasing)}" if task.phrasing in train
            else f"{task.pattern}/heldout{held.index(task.phrasing)}")
    goal_ltl = "F(" + " & ".join(in_atom(b, z) for b, z in task.placements) + ")"
    return Task(domain, task.instruction, task.formula, goal_ltl, start, name, split,
                {"pattern": task.pattern, "placements": task.placements, "avoid": task.avoid})
