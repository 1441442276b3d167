"""Long-horizon rearrangement tasks: 2-3 pick-and-place steps under temporal conditions.

Usage: ``task = sample_rearrange_task(np.random.default_rng(0), "train")``; ``task.instruction``,
``task.formula`` (LTLf over :func:`atoms`), ``task.steps`` (what the scripted expert does).

A task places some blocks in some zones (one block per zone: a 10 cm zone holds one 4 cm block
with room to spare) and may add an order ("the red block before the blue one") and a zone that
nothing may ever enter. Its instruction is rendered from templates split into train and
held-out phrasings; an instruction of the held-out split always uses a held-out phrasing or a
held-out block/zone pair (``instructions.HELDOUT_COMBOS``), as for the one-step tasks. Each task
carries its LTLf formula as text over the scene's atoms, so a planner (or a checker outside
``envs``) can verify a trace; the env itself checks the same conditions directly.

Atoms of a state: ``<block>_in_<zone>`` (the block rests inside the zone) and
``holding_<block>`` (both finger pads touch it). Pure Python; nothing here imports MuJoCo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.tabletop import instructions as ins

PATTERNS: tuple[str, ...] = ("both", "ordered", "avoid", "ordered_avoid", "sequence")
"""``both``: two placements, any order; ``ordered``: two, one before the other; ``avoid``: two
and a zone nothing may enter; ``ordered_avoid``: both conditions; ``sequence``: three in
order."""

# Per pattern: (train phrasings, held-out phrasings). Fields: {b1} {z1} {b2} {z2} [{b3} {z3}]
# and {avoid}.
PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "both": (
        ("put the {b1} block in the {z1} zone and the {b2} block in the {z2} zone",
         "place the {b1} block into the {z1} zone and the {b2} block into the {z2} zone",
         "the {b1} block goes to the {z1} zone and the {b2} block to the {z2} zone"),
        ("get the {b1} cube onto the {z1} area and the {b2} cube onto the {z2} area",),
    ),
    "ordered": (
        ("put the {b1} block in the {z1} zone before the {b2} block goes to the {z2} zone",
         "first put the {b1} block in the {z1} zone, then the {b2} block in the {z2} zone",
         "move the {b1} block to the {z1} zone, and only after that the {b2} block to the "
         "{z2} zone"),
        ("the {b2} block may go to the {z2} zone only once the {b1} block is in the {z1} "
         "zone, do both",),
    ),
    "avoid": (
        ("put the {b1} block in the {z1} zone and the {b2} block in the {z2} zone, and never "
         "put anything in the {avoid} zone",
         "place the {b1} block in the {z1} zone and the {b2} block in the {z2} zone, keep the "
         "{avoid} zone empty"),
        ("leave the {avoid} area empty while the {b1} cube goes to {z1} and the {b2} cube to "
         "{z2}",),
    ),
    "ordered_avoid": (
        ("put the {b1} block in the {z1} zone before the {b2} block goes to the {z2} zone, and "
         "never put anything in the {avoid} zone",
         "first the {b1} block to the {z1} zone, then the {b2} block to the {z2} zone, keep "
         "the {avoid} zone empty"),
        ("keep the {avoid} area clear, and do the {b1} cube to {z1} before the {b2} cube to "
         "{z2}",),
    ),
    "sequence": (
        ("put the {b1} block in the {z1} zone, then the {b2} block in the {z2} zone, then the "
         "{b3} block in the {z3} zone",
         "first the {b1} block to the {z1} zone, next the {b2} block to the {z2} zone, last "
         "the {b3} block to the {z3} zone"),
        ("in this order, {b1} cube to {z1}, {b2} cube to {z2}, {b3} cube to {z3}",),
    ),
}
MAX_INSTRUCTION_LENGTH = 192


def in_atom(block: str, zone: str) -> str:
    """The atom saying the ``block`` block rests inside the ``zone`` zone."""
    return f"{block}_in_{zone}"


def holding_atom(block: str) -> str:
    """The atom saying the gripper holds the ``block`` block."""
    return f"holding_{block}"


def atoms() -> tuple[str, ...]:
    """Every atom a state of the scene can make true."""
    return tuple(in_atom(b, z) for b in ins.BLOCK_COLOURS for z in ins.ZONE_COLOURS) + tuple(
        holding_atom(b) for b in ins.BLOCK_COLOURS)


@dataclass(frozen=True)
class RearrangeTask:
    """One rearrangement task.

    Attributes:
        pattern: One of :data:`PATTERNS`.
        placements: ``(block, zone)`` pairs that must all hold at the end, in the order the
            instruction names them.
        ordered: Whether each placement must hold before the next one first holds.
        avoid: A zone no block may ever rest in (``None``: no such condition).
        phrasing: The template the instruction was rendered from.
        instruction: The rendered instruction.
    """

    pattern: str
    placements: tuple[tuple[str, str], ...]
    ordered: bool
    avoid: str | None
    phrasing: str
    instruction: str

    @property
    def steps(self) -> tuple[str, ...]:
        """One-step instructions that carry the task out, in a valid order."""
        return tuple(f"put the {b} block in the {z} zone" for b, z in self.placements)

    @property
    def formula(self) -> str:
        """The task as an LTLf formula over :func:`atoms` (the ground truth for planners)."""
        goal = " & ".join(in_atom(b, z) for b, z in self.placements)
        parts = [f"F({goal})"]
        if self.ordered:
            for (b1, z1), (b2, z2) in zip(self.placements, self.placements[1:], strict=False):
                parts.append(f"(!{in_atom(b2, z2)} U {in_atom(b1, z1)})")
        if self.avoid is not None:
            parts.append("G(" + " & ".join(f"!{in_atom(b, self.avoid)}"
                                           for b in ins.BLOCK_COLOURS) + ")")
        return " & ".join(parts)


def task_choices(pattern: str, split: str, rng: np.random.Generator, n: int = 1
                 ) -> list[RearrangeTask]:
    """Draw ``n`` tasks of ``pattern`` allowed in ``split`` (rejection over random picks).

    Raises:
        ValueError: If the pattern or split is unknown.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    if split not in ins.SPLITS:
        raise ValueError(f"split must be one of {ins.SPLITS}, got {split!r}")
    train_phr, held_phr = PHRASINGS[pattern]
    k = 3 if pattern == "sequence" else 2
    out = []
    while len(out) < n:
        phrasing = [*train_phr, *held_phr][int(rng.integers(len(train_phr) + len(held_phr)))]
        blocks = rng.permutation(ins.BLOCK_COLOURS)[:k]
        zones = rng.permutation(ins.ZONE_COLOURS)
        placements = tuple((str(b), str(z)) for b, z in zip(blocks, zones[:k], strict=True))
        avoid = str(zones[2]) if "avoid" in pattern else None
        held = phrasing in held_phr or any(p in ins.HELDOUT_COMBOS for p in placements)
        if held != (split == "heldout"):
            continue
        fields = {f"b{i + 1}": b for i, (b, _) in enumerate(placements)}
        fields |= {f"z{i + 1}": z for i, (_, z) in enumerate(placements)}
        out.append(RearrangeTask(pattern, placements, pattern in ("ordered", "ordered_avoid",
                                                                  "sequence"),
                                 avoid, phrasing, phrasing.format(avoid=avoid, **fields)))
    return out


def sample_rearrange_task(rng: np.random.Generator, split: str,
                          pattern: str | None = None) -> RearrangeTask:
    """Draw one task of ``split`` (a uniformly drawn pattern unless ``pattern`` is given)."""
    pattern = pattern if pattern is not None else PATTERNS[int(rng.integers(len(PATTERNS)))]
    return task_choices(pattern, split, rng)[0]
