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

import difflib
import re
from dataclasses import dataclass

from envs.symbolic.base import InvalidStateError, InvalidStepError, SymbolicDomain, check_split

ATOM = re.compile(r"[a-z_][a-z0-9_]*")
"""What a node name must look like: an LTLf atom (it is one in every spec)."""
GENERATED = re.compile(r"(corridor|stairs)_[0-9]+")
"""Node names the building generates for every floor (``corridor_1``, ``stairs_2``)."""


@dataclass(frozen=True)
class Layout:
    """A building: rooms per floor and extra room-to-room doors.

    Attributes:
        name: Layout name (one line of text; it appears in prompts).
        floors: Room names per floor (floor 1 first, which must have a room). A room name must
            be an LTLf atom (``[a-z_][a-z0-9_]*``, not ``true``/``false``) and must not look like
            a generated node name (``corridor_<n>``, ``stairs_<n>``).
        doors: Extra undirected doors between two different nodes (rooms, or the generated
            corridors and stairwells of existing floors).
        split: ``"train"`` or ``"heldout"`` (held-out layouts never appear in LM training).

    Raises:
        TypeError: If a field has the wrong type.
        ValueError: If a name is not a valid atom, collides with a generated name or repeats, a
            door names an unknown node, or the layout has no room on floor 1.
    """

    name: str
    floors: tuple[tuple[str, ...], ...]
    doors: tuple[tuple[str, str], ...] = ()
    split: str = "train"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or \
                not self.name.isprintable():
            raise ValueError(f"Layout.name must be a non-empty one-line str, got {self.name!r}")
        if isinstance(self.floors, (str, bytes)) or not all(
                isinstance(f, (tuple, list)) for f in _iterable(self.floors, "floors")):
            raise TypeError(f"Layout.floors must be a sequence of room-name sequences, got "
                            f"{self.floors!r}")
        floors = tuple(tuple(f) for f in self.floors)
        if not floors or not floors[0]:
            raise ValueError(f"layout {self.name!r} needs at least one room on floor 1")
        seen: set[str] = set()
        for f, floor in enumerate(floors, start=1):
            for room in floor:
                if not isinstance(room, str):
                    raise TypeError(f"layout {self.name!r} floor {f}: room names must be str, "
                                    f"got {room!r}")
                if not ATOM.fullmatch(room) or room in ("true", "false"):
                    raise ValueError(f"layout {self.name!r} floor {f}: room name {room!r} is not "
                                     "a valid atom ([a-z_][a-z0-9_]*, not true/false)")
                if GENERATED.fullmatch(room):
                    raise ValueError(f"layout {self.name!r} floor {f}: room name {room!r} "
                                     "collides with the generated corridor_<n>/stairs_<n> names")
                if room in seen:
                    raise ValueError(f"layout {self.name!r} repeats the room name {room!r}")
                seen.add(room)
        nodes = seen | {f"{kind}_{f}" for f in range(1, len(floors) + 1)
                        for kind in ("corridor", "stairs")}
        doors = tuple(tuple(d) for d in _iterable(self.doors, "doors")
                      if isinstance(d, (tuple, list)))
        if len(doors) != len(tuple(self.doors)) or any(len(d) != 2 for d in doors):
            raise TypeError(f"Layout.doors must be (node, node) pairs, got {self.doors!r}")
        for a, b in doors:
            for end in (a, b):
                if end not in nodes:
                    raise ValueError(f"door {a}-{b} names an unknown node {end!r} in layout "
                                     f"{self.name!r}")
            if a == b:
                raise ValueError(f"door {a}-{b} in layout {self.name!r} joins a node to itself")
        check_split(self.split)
        object.__setattr__(self, "floors", floors)
        object.__setattr__(self, "doors", doors)


def _iterable(value, field: str) -> tuple:
    """``tuple(value)``, or a TypeError naming the Layout field."""
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"Layout.{field} must be a sequence, got {value!r}") from None


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
        if not isinstance(layout, (str, Layout)):
            raise TypeError(f"layout must be a layout name or a Layout, got {layout!r}")
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
        self.start = self.validate_state(start if start is not None else layout.floors[0][0])

    def __repr__(self) -> str:
        return f"DroneNav({self.layout.name!r})"

    def validate_state(self, state: str) -> str:
        """Return ``state`` if it is a node of the building.

        Raises:
            TypeError: If ``state`` is not a str.
            InvalidStateError: If it is not a node of this layout (the message lists them and
                suggests the closest).
        """
        if not isinstance(state, str):
            raise TypeError(f"a DroneNav state is a node name (str), got "
                            f"{type(state).__name__} {state!r}")
        if state not in self.adjacency:
            close = difflib.get_close_matches(state, self._nodes, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidStateError(f"unknown room {state!r} in layout {self.layout.name!r}"
                                    f"{hint}; nodes are: {', '.join(self._nodes)}")
        return state

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
        self.validate_state(state)
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
