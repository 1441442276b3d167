"""DroneNav: a drone flying through a multi-floor building graph.

Usage: ``from envs.symbolic import DroneNav; d = DroneNav("office"); d.apply("lobby",
"fly_to(corridor_1)")``

Each layout has floors; a floor has a corridor (``corridor_<f>``), a stairwell (``stairs_<f>``)
and rooms. Every room opens onto its floor's corridor, some rooms also have doors between them,
and stairwells connect consecutive floors. The only action is ``fly_to(<node>)``, executable
only towards a node adjacent to the drone's node. Atoms are the node names; exactly one is true
in each state (where the drone is), so the LTL alphabet is the set of singletons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envs.symbolic.base import InvalidStepError, SymbolicDomain


@dataclass(frozen=True)
class Layout:
    """A building: rooms per floor and extra room-to-room doors.

    Attributes:
        name: Layout name.
        floors: Room names per floor (floor 1 first).
        doors: Extra undirected room-to-room doors.
        split: ``"train"`` or ``"heldout"`` (held-out layouts never appear in LM training).
    """

    name: str
    floors: tuple[tuple[str, ...], ...]
    doors: tuple[tuple[str, str], ...] = ()
    split: str = "train"


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("office",
               (("lobby", "reception", "cafe", "mail_room"),
                ("kitchen", "office_a", "office_b", "printer_room"),
                ("lab", "server_room", "meeting_room")),
               (("lobby", "reception"), ("reception", "cafe"), ("office_a", "office_b"),
                ("lab", "server_room"))),
        Layout("hospital",
               (("entrance", "pharmacy", "triage", "waiting_room"),
                ("ward_a", "ward_b", "operating_room", "supply_room"),
                ("lab", "server_room", "kitchen")),
               (("entrance", "waiting_room"), ("waiting_room", "triage"),
                ("operating_room", "supply_room"), ("kitchen", "lab"))),
        Layout("school",
               (("hall", "gym", "library", "cafe"),
                ("classroom_a", "classroom_b", "lab", "office_a")),
               (("hall", "library"), ("gym", "cafe"), ("classroom_a", "classroom_b"))),
        Layout("warehouse",
               (("loading_dock", "storage_a", "storage_b", "office_a"),
                ("storage_c", "server_room", "kitchen"),
                ("control_room", "archive"),
                ("roof_deck", "antenna_room")),
               (("loading_dock", "storage_a"), ("storage_a", "storage_b"),
                ("control_room", "archive"))),
        Layout("museum",
               (("foyer", "gift_shop", "gallery_a", "cafe"),
                ("gallery_b", "archive", "server_room", "studio"),
                ("lab", "office_a", "kitchen")),
               (("foyer", "gift_shop"), ("gallery_a", "cafe"), ("gallery_b", "studio"),
                ("archive", "server_room")),
               split="heldout"),
    )
}

_STEP = re.compile(r"fly_to\(([a-z_][a-z0-9_]*)\)\Z")


class DroneNav(SymbolicDomain):
    """A drone in a multi-floor building; states are node names.

    Args:
        layout: A name from ``LAYOUTS`` or a ``Layout``.
        start: Default initial node (defaults to the first room of floor 1).
    """

    name = "drone_nav"

    def __init__(self, layout: str | Layout = "office", start: str | None = None) -> None:
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
            layout = LAYOUTS[layout]
        self.layout = layout
        adj: dict[str, set[str]] = {}

        def link(a: str, b: str) -> None:
            adj.setdefault(a, set()).add(b)
            adj.setdefault(b, set()).add(a)

        self.rooms: tuple[str, ...] = tuple(r for floor in layout.floors for r in floor)
        if len(set(self.rooms)) != len(self.rooms):
            raise ValueError(f"layout {layout.name!r} repeats a room name")
        self.floor_of: dict[str, int] = {}
        for f, floor in enumerate(layout.floors, start=1):
            corridor, stairs = f"corridor_{f}", f"stairs_{f}"
            link(corridor, stairs)
            for room in floor:
                link(room, corridor)
            if f > 1:
                link(stairs, f"stairs_{f - 1}")
            for node in (*floor, corridor, stairs):
                self.floor_of[node] = f
        for a, b in layout.doors:
            if a not in adj or b not in adj:
                raise ValueError(f"door {a}-{b} names an unknown room in {layout.name!r}")
            link(a, b)
        self.adjacency: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in adj.items()}
        self._nodes = tuple(sorted(adj))
        self.start = start if start is not None else layout.floors[0][0]
        if self.start not in adj:
            raise ValueError(f"start must be a node of {layout.name!r}, got {start!r}")

    def __repr__(self) -> str:
        return f"DroneNav({self.layout.name!r})"

    @property
    def atoms(self) -> frozenset[str]:
        """The node names."""
        return frozenset(self._nodes)

    def label(self, state: str) -> frozenset[str]:
        """``{state}``: the drone is at exactly one node."""
        return frozenset((state,))

    def steps(self) -> tuple[str, ...]:
        """``fly_to(<node>)`` for every node."""
        return tuple(f"fly_to({n})" for n in self._nodes)

    def apply(self, state: str, step: str) -> str:
        """Fly to an adjacent node."""
        m = _STEP.match(step.strip())
        if m is None:
            raise InvalidStepError(f"not a DroneNav step: {step!r} (expected fly_to(<room>))")
        target = m.group(1)
        if target not in self.adjacency:
            raise InvalidStepError(f"unknown room {target!r} in layout {self.layout.name!r}")
        if target not in self.adjacency[state]:
            raise InvalidStepError(f"{target} is not adjacent to {state}")
        return target

    def applicable(self, state: str) -> tuple[str, ...]:
        """Flights to the adjacent nodes."""
        return tuple(f"fly_to({n})" for n in sorted(self.adjacency[state]))

    def states(self) -> tuple[str, ...]:
        """Every node."""
        return self._nodes

    def describe(self, state: str) -> str:
        """The layout and the drone node, e.g. ``building: office. at: lobby.``."""
        return f"building: {self.layout.name}. at: {state}."
