"""Seeded task generators for the symbolic domains, and the domain registry.

Usage: ``from envs.symbolic import generate_tasks; tasks = generate_tasks("drone_nav", 10,
seed=0, split="heldout")``

A task is an instruction in words (one of several templates per pattern), its ground-truth
LTLf formula, the formula of its goals alone, and an initial state. Splits: ``"train"`` tasks
use train layouts and train templates only; every ``"heldout"`` task uses a held-out template or
a held-out building layout (DroneNav: the ``museum`` layout; BlocksWorld has held-out templates
only; ``tabletop_rearrange``, the symbolic mirror of ``TabletopRearrange-v0``, uses the env's
own phrasings and held-out block/zone pairs, see ``envs.tabletop.rearrange_domain``).
Generators only emit tasks whose specification is satisfiable (checked by search here).
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable

from envs.symbolic.base import SymbolicDomain, Task, check_split, words
from envs.symbolic.blocks_world import BlocksWorld
from envs.symbolic.drone_nav import LAYOUTS, DroneNav

# pattern -> (train templates, held-out templates)
DRONE_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reach": (("fly to the {a}.", "go to the {a}."), ("make your way to the {a}.",)),
    "sequence": (("visit the {a} and then the {b}.", "go to the {a}, then to the {b}."),
                 ("first check the {a}, afterwards the {b}.",)),
    "avoid": (("go to the {a} without entering the {c}.",
               "fly to the {a} but never enter the {c}."),
              ("reach the {a} while staying out of the {c}.",)),
    "sequence_avoid": (("visit the {a} and then the {b}, never entering the {c}.",
                        "go to the {a}, then the {b}; avoid the {c}."),
                       ("stay out of the {c}, and visit the {a} followed by the {b}.",)),
    "both": (("visit both the {a} and the {b}.", "go to the {a} and the {b} in any order."),
             ("check on the {b} and the {a}, the order does not matter.",)),
    "after": (("go to the {b}, but only after visiting the {a}.",
               "do not enter the {b} before you have been to the {a}, then go to the {b}."),
              ("the {b} is off limits until you have seen the {a}; end up in the {b}.",)),
    "finish": (("go to the {a} and finish in the {b}.", "visit the {a}, then land in the {b}."),
               ("pass through the {a} and stop for good at the {b}.",)),
}

BLOCKS_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "on": (("put the {x} block on the {y} block.", "stack {x} on {y}."),
           ("place the {x} block on top of the {y} one.",)),
    "tower": (("build a tower with {x} on {y} and {y} on {z}.",
               "stack {x} on {y} and {y} on {z}."),
              ("make a stack: {z} at the bottom, then {y}, then {x} on top.",)),
    "move": (("move the {x} block to the {loc} spot.", "put the {x} block at the {loc}."),
             ("set the {x} block down at the {loc} location.",)),
    "avoid": (("put the {x} block on the {y} block without touching the {w} block.",
               "stack {x} on {y} but never pick up {w}."),
              ("leave the {w} block alone and put {x} on {y}.",)),
    "order": (("put the {x} block on the {y} block, but pick up the {v} block first.",
               "pick up {v} before you touch {x}, and stack {x} on {y}."),
              ("do not lift the {x} block until you have lifted the {v} block; {x} goes on {y}.",)),
}


def _template(rng: random.Random, table: dict, pattern: str, heldout: bool) -> tuple[str, str]:
    train, held = table[pattern]
    pool = held if heldout else train
    i = rng.randrange(len(pool))
    return pool[i], f"{pattern}/{'heldout' if heldout else 'train'}{i}"


def _drone_task(rng: random.Random, split: str) -> Task | None:
    """One DroneNav task, or None when the random draw was infeasible."""
    layouts = [n for n, lay in LAYOUTS.items() if split == "heldout" or lay.split == "train"]
    name = rng.choice(sorted(layouts))
    domain = DroneNav(name)
    heldout_template = split == "heldout" and (LAYOUTS[name].split == "train" or rng.random() < .5)
    pattern = rng.choice(sorted(DRONE_TEMPLATES))
    rooms = list(domain.rooms)
    start, a, b = rng.sample(rooms, 3)
    path = domain.reachable(start, lambda s: s == a) or []
    path += domain.reachable(a, lambda s: s == b) or []
    on_path = [s[7:-1] for s in path if s[7:-1] in rooms and s[7:-1] not in (start, a, b)]
    others = [r for r in rooms if r not in (start, a, b)]
    c = rng.choice(on_path) if on_path and rng.random() < 0.6 else rng.choice(others)
    never = (lambda s: s == c) if pattern in ("avoid", "sequence_avoid") else (lambda s: False)
    if domain.reachable(start, lambda s: s == a, never) is None:
        return None
    if pattern in ("sequence", "sequence_avoid", "finish") and \
            domain.reachable(a, lambda s: s == b, never) is None:
        return None
    if pattern == "after" and domain.reachable(start, lambda s: s == a, lambda s: s == b) is None:
        return None
    formulas = {
        "reach": (f"F({a})", f"F({a})"),
        "sequence": (f"F({a} & F({b}))", f"F({a} & F({b}))"),
        "avoid": (f"F({a}) & G(!{c})", f"F({a})"),
        "sequence_avoid": (f"F({a} & F({b})) & G(!{c})", f"F({a} & F({b}))"),
        "both": (f"F({a}) & F({b})", f"F({a}) & F({b})"),
        "after": (f"(!{b} U {a}) & F({b})", f"F({b})"),
        "finish": (f"F({a}) & F({b} & WX false)", f"F({a}) & F({b} & WX false)"),
    }
    ltl, goal = formulas[pattern]
    text, tname = _template(rng, DRONE_TEMPLATES, pattern, heldout_template)
    instruction = text.format(a=words(a), b=words(b), c=words(c))
    return Task(domain, instruction, ltl, goal, start, tname, split,
                {"pattern": pattern, "layout": name})


def _blocks_task(rng: random.Random, split: str, domain: BlocksWorld) -> Task | None:
    """One BlocksWorld task, or None when the random draw was infeasible."""
    blocks = list(domain.blocks)
    rng.shuffle(blocks)
    stacks: dict[str, list[str]] = {loc: [] for loc in domain.locations}
    for blk in blocks:
        stacks[rng.choice(domain.locations)].append(blk)
    start = domain.make_state(stacks)
    pattern = rng.choice(sorted(BLOCKS_TEMPLATES))
    x, y, z, w = rng.sample(domain.blocks, 4) if len(domain.blocks) >= 4 else (
        *rng.sample(domain.blocks, 3), None)
    loc = rng.choice(domain.locations)
    if pattern == "on":
        ltl = goal = f"F({x}_on_{y})"
    elif pattern == "tower":
        ltl = goal = f"F({x}_on_{y} & {y}_on_{z})"
    elif pattern == "move":
        ltl = goal = f"F({x}_on_{loc})"
    elif pattern == "avoid":
        w = z if w is None else w
        ltl, goal = f"F({x}_on_{y}) & G(!holding_{w})", f"F({x}_on_{y})"
        if domain.reachable(start, lambda s: (x, y) in s.on, lambda s: s.holding == w) is None:
            return None
    else:  # order: pick v before x
        v = z
        ltl, goal = f"F({x}_on_{y}) & (!holding_{x} U holding_{v})", f"F({x}_on_{y})"
        if domain.reachable(start, lambda s: s.holding == v, lambda s: s.holding == x) is None:
            return None
        w = v
    need = {"tower": {f"{x}_on_{y}", f"{y}_on_{z}"}, "move": {f"{x}_on_{loc}"}}
    if need.get(pattern, {f"{x}_on_{y}"}) <= domain.label(start):
        return None  # the goal already holds initially
    heldout = split == "heldout"
    text, tname = _template(rng, BLOCKS_TEMPLATES, pattern, heldout)
    instruction = text.format(x=x, y=y, z=z, w=w, v=w, loc=loc)
    return Task(domain, instruction, ltl, goal, start, tname, split, {"pattern": pattern})


def _rearrange_domain(**kwargs) -> SymbolicDomain:
    """``RearrangeDomain(**kwargs)``, imported on use.

    ``envs.tabletop.rearrange_domain`` imports this package, so importing it here at load time
    would be circular.
    """
    from envs.tabletop.rearrange_domain import RearrangeDomain

    return RearrangeDomain(**kwargs)


DOMAINS: dict[str, Callable[..., SymbolicDomain]] = {
    "drone_nav": DroneNav,
    "blocks_world": BlocksWorld,
    "tabletop_rearrange": _rearrange_domain,
}


def make_domain(name: str, **kwargs) -> SymbolicDomain:
    """Build a registered domain by name (``drone_nav``, ``blocks_world``, ``tabletop_rearrange``).

    Raises:
        ValueError: For an unknown name, listing the known ones and the closest match.
    """
    if name not in DOMAINS:
        close = difflib.get_close_matches(name, DOMAINS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {name!r}{hint}")
    return DOMAINS[name](**kwargs)


def generate_tasks(name: str, n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """Generate ``n`` satisfiable tasks of domain ``name`` deterministically from ``seed``.

    Args:
        name: Registered domain name.
        n: Number of tasks (>= 0).
        seed: Random seed; the same arguments always give the same tasks.
        split: ``"train"`` or ``"heldout"`` (see the module docstring).

    Returns:
        The tasks.
    """
    check_split(split)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    make_domain(name)  # validates the name
    from envs.tabletop.rearrange_domain import rearrange_task  # see _rearrange_domain

    rng = random.Random(f"{name}/{split}/{seed}")
    blocks, rearrange = BlocksWorld(), make_domain("tabletop_rearrange")
    out: list[Task] = []
    while len(out) < n:
        if name == "tabletop_rearrange":
            task = rearrange_task(rng, split, rearrange)
        else:
            task = (_drone_task(rng, split) if name == "drone_nav"
                    else _blocks_task(rng, split, blocks))
        if task is not None:
            out.append(task)
    return out
