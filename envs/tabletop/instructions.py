"""Instruction templates of the tabletop tasks and their train / held-out splits.

Every instruction names its target by colour (and, for push and pick-place, the target zone by
colour), so a policy has to read both the instruction and the image. Some phrasings and some
block/zone colour combinations are reserved for evaluation: an instruction of the ``"heldout"``
split always uses a held-out phrasing or a held-out combination (or both), so no held-out
instruction string can ever appear in the ``"train"`` split.

Pure Python; nothing here imports MuJoCo.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

TASKS: tuple[str, ...] = ("reach", "push", "pickplace")
"""Task names; the multi-task env samples one of these per episode."""

SPLITS: tuple[str, ...] = ("train", "heldout")

BLOCK_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
"""Colours of the four 4 cm blocks (body names are ``block_<colour>``)."""

ZONE_COLOURS: tuple[str, ...] = ("purple", "orange", "white")
"""Colours of the three 10 cm target zones (body names are ``zone_<colour>``)."""

ALL_COMBOS: tuple[tuple[str, str], ...] = tuple(
    (b, z) for b in BLOCK_COLOURS for z in ZONE_COLOURS)
HELDOUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {("red", "orange"), ("green", "white"), ("blue", "purple")})
"""(block, zone) pairs never shown in training (push and pick-place); every colour still
appears in some training pair."""
TRAIN_COMBOS: frozenset[tuple[str, str]] = frozenset(ALL_COMBOS) - HELDOUT_COMBOS

REACH_TARGETS: tuple[str, ...] = tuple(
    [f"{c} block" for c in BLOCK_COLOURS] + [f"{c} zone" for c in ZONE_COLOURS])
"""Reach targets: any block or any zone. Reach holds out phrasings only."""

# Per task: (train phrasings, held-out phrasings). Fields: {block}, {zone} or {target}.
PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reach": (
        ("move the gripper above the {target}",
         "reach to the {target}",
         "go to the {target}",
         "hover over the {target}"),
        ("bring your hand right above the {target}",
         "position the gripper over the {target}"),
    ),
    "push": (
        ("push the {block} block into the {zone} zone",
         "slide the {block} block to the {zone} zone",
         "shove the {block} block onto the {zone} square",
         "nudge the {block} block into the {zone} zone without lifting it"),
        ("drag the {block} cube along the table to the {zone} area",
         "using a push, get the {block} block into the {zone} zone"),
    ),
    "pickplace": (
        ("put the {block} block in the {zone} zone",
         "place the {block} block into the {zone} zone",
         "pick up the {block} block and put it in the {zone} zone",
         "move the {block} block to the {zone} zone",
         "grab the {block} block and drop it on the {zone} square"),
        ("carry the {block} cube over to the {zone} area",
         "the {block} block belongs in the {zone} zone, put it there"),
    ),
}

CHARSET: str = string.ascii_lowercase + " ,."
"""Characters any instruction may contain (the observation's ``Text`` space charset)."""
MAX_INSTRUCTION_LENGTH: int = 96


@dataclass(frozen=True)
class TaskSpec:
    """One episode's task: what to do, with which objects, and how it was phrased.

    Attributes:
        task: One of ``TASKS``.
        block: Colour of the block to reach, push or pick (``None`` when reaching a zone).
        zone: Colour of the target zone (``None`` when reaching a block).
        phrasing: The template the instruction was rendered from.
        instruction: The rendered instruction string.
    """

    task: str
    block: str | None
    zone: str | None
    phrasing: str
    instruction: str


def phrasings(task: str, split: str) -> tuple[str, ...]:
    """Return the phrasing templates of ``task`` reserved for ``split``."""
    _check(task, split)
    train, heldout = PHRASINGS[task]
    return train if split == "train" else heldout


def episode_choices(task: str, split: str) -> list[TaskSpec]:
    """Enumerate every (phrasing, target) pair that an episode of ``split`` may draw.

    ``"train"`` pairs a train phrasing with a train combination (any target for reach);
    ``"heldout"`` is every remaining pair, i.e. a held-out phrasing or a held-out combination.

    Args:
        task: One of ``TASKS``.
        split: ``"train"`` or ``"heldout"``.

    Returns:
        The candidate task specs, in a fixed order (so seeded sampling is reproducible).
    """
    _check(task, split)
    train_phr, heldout_phr = PHRASINGS[task]
    specs = []
    for phrasing in train_phr + heldout_phr:
        phr_held = phrasing in heldout_phr
        if task == "reach":
            for target in REACH_TARGETS:
                if phr_held != (split == "heldout"):
                    continue
                colour, kind = target.split()
                specs.append(TaskSpec(
                    task, colour if kind == "block" else None, colour if kind == "zone" else None,
                    phrasing, phrasing.format(target=target)))
        else:
            for block, zone in ALL_COMBOS:
                held = phr_held or (block, zone) in HELDOUT_COMBOS
                if held != (split == "heldout"):
                    continue
                specs.append(TaskSpec(task, block, zone, phrasing,
                                      phrasing.format(block=block, zone=zone)))
    return specs


def sample_task(rng: np.random.Generator, task: str, split: str) -> TaskSpec:
    """Draw one task spec of ``task`` uniformly from the pairs allowed in ``split``."""
    choices = episode_choices(task, split)
    return choices[int(rng.integers(len(choices)))]


def instructions(task: str, split: str) -> frozenset[str]:
    """Return every instruction string ``task`` can produce in ``split`` (for tests)."""
    return frozenset(s.instruction for s in episode_choices(task, split))


def _check(task: str, split: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
