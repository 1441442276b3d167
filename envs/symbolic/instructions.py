"""Instruction/formula pairs for NL -> LTL training: patterns with many paraphrase templates.

Usage: ``from envs.symbolic.instructions import generate_pairs; generate_pairs("drone_nav",
1000, seed=0)``

Each pattern (reach, ordering, avoidance, until, response, conjunctions of 2-4 clauses, bounded
repetition, finishing) has a formula over slots ``{a} {b} {c} {d}`` and paraphrases built from
verb, connective and avoidance phrase lists, so every pattern has dozens of wordings. The
task generator's train templates are included; its held-out templates and the hand-written
phrasings in ``envs/symbolic/data/phrasings_<domain>.json`` are never generated.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from envs.symbolic.base import SymbolicDomain, words
from envs.symbolic.blocks_world import BlocksWorld
from envs.symbolic.drone_nav import LAYOUTS, DroneNav
from envs.symbolic.tasks import BLOCKS_TEMPLATES, DRONE_TEMPLATES

DATA = Path(__file__).resolve().parent / "data"

GO = ("go to the {}", "fly to the {}", "visit the {}", "head to the {}", "move to the {}",
      "get to the {}", "reach the {}", "travel to the {}", "navigate to the {}")
THEN = (", then {}", " and then {}", ", and after that {}", ", afterwards {}", "; next, {}",
        " and later {}")
AVOID = (" without entering the {}", ", never entering the {}", " but never enter the {}",
         ", avoiding the {}", "; do not enter the {}", " while staying out of the {}",
         ", keeping away from the {}")

DRONE: dict[str, tuple[str, tuple[str, ...]]] = {
    "reach": ("F({a})", tuple(g.format("{a}") + "." for g in GO)),
    "seq2": ("F({a} & F({b}))", tuple(
        g.format("{a}") + t.format(h.format("{b}")) + "."
        for g, t, h in itertools.product(GO[:5], THEN, GO[2:5]))),
    "seq3": ("F({a} & F({b} & F({c})))", tuple(
        g.format("{a}") + t.format(h.format("{b}")) + t.format(h.format("{c}")) + "."
        for g, t, h in itertools.product(GO[:4], THEN, GO[2:4]))),
    "avoid": ("F({a}) & G(!{c})", tuple(
        g.format("{a}") + v.format("{c}") + "." for g, v in itertools.product(GO, AVOID))),
    "seq_avoid": ("F({a} & F({b})) & G(!{c})", tuple(
        g.format("{a}") + t.format(h.format("{b}")) + v.format("{c}") + "."
        for g, t, h, v in itertools.product(GO[:3], THEN[:3], GO[2:4], AVOID))),
    "both": ("F({a}) & F({b})", tuple(
        f"{g.format('{a}')} and the {{b}}{s}." for g, s in itertools.product(
            GO, ("", " in any order", ", in either order", ", order does not matter"))) + (
        "visit both the {a} and the {b}.", "make sure you visit the {a} and the {b}.")),
    "all3": ("F({a}) & F({b}) & F({c})", tuple(
        f"{g.format('{a}')}, the {{b}} and the {{c}}{s}." for g, s in itertools.product(
            GO, ("", " in any order")))),
    "avoid2": ("F({a}) & G(!{c}) & G(!{d})", tuple(
        f"{g.format('{a}')}{v.format('{c}')} and the {{d}}." for g, v in itertools.product(
            GO[:5], AVOID))),
    "after": ("(!{b} U {a}) & F({b})", tuple(
        f"{g.format('{b}')}, but only after {w} the {{a}}." for g, w in itertools.product(
            GO, ("visiting", "you have visited", "going to", "you have been to"))) + (
        "do not enter the {b} before you have been to the {a}, then go to the {b}.",
        "stay out of the {b} until you reach the {a}, then go to the {b}.",
        "you may enter the {b} only once you have visited the {a}; go to the {b}.")),
    "until": ("!{c} U {a}", tuple(
        f"avoid the {{c}} until you {v} the {{a}}." for v in ("reach", "get to", "visit")) + (
        "do not enter the {c} before reaching the {a}.",
        "stay out of the {c} until the {a} is reached.")),
    "response": ("G({a} -> F({b}))", (
        "whenever you visit the {a}, go to the {b} afterwards.",
        "every time you enter the {a}, visit the {b} later.",
        "each visit to the {a} must be followed by a visit to the {b}.",
        "if you go to the {a}, you must go to the {b} afterwards.")),
    "response_reach": ("F({a}) & G({a} -> F({b}))", (
        "visit the {a}, and whenever you visit the {a}, go to the {b} afterwards.",
        "go to the {a}; every visit to the {a} must be followed by the {b}.")),
    "twice": ("F({a} & F(!{a} & F({a})))", tuple(
        f"{g.format('{a}')} twice{s}." for g, s in itertools.product(
            GO, ("", ", leaving it in between"))) + ("visit the {a} at least two times.",)),
    "finish": ("F({a}) & F({b} & WX false)", tuple(
        f"{g.format('{a}')} and {e} the {{b}}." for g, e in itertools.product(
            GO, ("finish in", "end in", "land in", "stop at"))) + (
        "visit the {a}, then land in the {b}.",)),
}

BLOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "on": ("F({a}_on_{b})", (
        "put the {a} block on the {b} block.", "stack {a} on {b}.", "place {a} on top of {b}.",
        "put {a} onto {b}.", "stack the {a} block onto the {b} block.",
        "get the {a} block onto the {b} block.", "move {a} on top of {b}.",
        "move the {a} block to the {b} spot.", "put the {a} block at the {b}.",
        "set {a} on {b}.")),
    "tower": ("F({a}_on_{b} & {b}_on_{c})", (
        "build a tower with {a} on {b} and {b} on {c}.", "stack {a} on {b} and {b} on {c}.",
        "make a tower: {a} on {b}, {b} on {c}.", "put {a} on {b} while {b} sits on {c}.",
        "build a stack of {a} over {b} over {c}.")),
    "avoid": ("F({a}_on_{b}) & G(!holding_{c})", tuple(
        f"{p} {v}." for p, v in itertools.product(
            ("put the {a} block on the {b} block", "stack {a} on {b}", "place {a} on {b}"),
            ("without touching the {c} block", "but never pick up {c}",
             "and never lift the {c} block", "without ever holding {c}",
             "but do not pick up the {c} block")))),
    "order": ("F({a}_on_{b}) & (!holding_{a} U holding_{c})", tuple(
        f"{p}, but pick up the {{c}} block first." for p in (
            "put the {a} block on the {b} block", "stack {a} on {b}")) + (
        "pick up {c} before you touch {a}, and stack {a} on {b}.",
        "do not lift {a} until you have lifted {c}; put {a} on {b}.",
        "lift {c} before {a}, then stack {a} on {b}.")),
    "hold": ("F(holding_{a})", ("pick up the {a} block.", "lift {a}.", "grab the {a} block.",
                                "hold the {a} block.")),
    "seq": ("F({a}_on_{b} & F({c}_on_{d}))", (
        "put {a} on {b}, then put {c} on {d}.", "stack {a} on {b} and afterwards {c} on {d}.",
        "first place {a} on {b}, then {c} on {d}.")),
    "both": ("F({a}_on_{b}) & F({c}_on_{d})", (
        "put {a} on {b} and {c} on {d}, in any order.", "stack {a} on {b} and {c} on {d}.")),
    "never_on": ("F({a}_on_{b}) & G(!{c}_on_{d})", (
        "stack {a} on {b} but never put {c} on {d}.",
        "put the {a} block on the {b} block without ever placing {c} on {d}.")),
    "response": ("G(holding_{a} -> F({a}_on_{b}))", (
        "whenever you pick up {a}, put it on {b} later.",
        "every time you hold the {a} block, place it on {b} afterwards.")),
    "twice": ("F(holding_{a} & F(!holding_{a} & F(holding_{a})))", (
        "pick up the {a} block twice.", "lift {a} two times, putting it down in between.")),
}

_TASK_TEMPLATES = {"drone_nav": DRONE_TEMPLATES, "blocks_world": BLOCKS_TEMPLATES}


def patterns(domain_name: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Formula and train paraphrases per pattern (incl. the task generator's train templates).

    Raises:
        ValueError: For an unknown domain name.
    """
    if domain_name not in _TASK_TEMPLATES:
        raise ValueError(f"domain must be one of {sorted(_TASK_TEMPLATES)}, got "
                         f"{domain_name!r}")
    return DRONE if domain_name == "drone_nav" else BLOCKS


def _task_templates(domain_name: str) -> list[tuple[str, str]]:
    """The task generator's train templates as (template, formula) in slot form."""
    out = []
    if domain_name == "drone_nav":
        forms = {"reach": "F({a})", "sequence": "F({a} & F({b}))",
                 "avoid": "F({a}) & G(!{c})", "sequence_avoid": "F({a} & F({b})) & G(!{c})",
                 "both": "F({a}) & F({b})", "after": "(!{b} U {a}) & F({b})",
                 "finish": "F({a}) & F({b} & WX false)"}
        for pat, (train, _) in DRONE_TEMPLATES.items():
            out += [(t, forms[pat]) for t in train]
    else:
        forms = {"on": "F({x}_on_{y})", "tower": "F({x}_on_{y} & {y}_on_{z})",
                 "move": "F({x}_on_{loc})", "avoid": "F({x}_on_{y}) & G(!holding_{w})",
                 "order": "F({x}_on_{y}) & (!holding_{x} U holding_{v})"}
        ren = {"x": "{a}", "y": "{b}", "z": "{c}", "w": "{c}", "v": "{c}", "loc": "{b}"}
        for pat, (train, _) in BLOCKS_TEMPLATES.items():
            out += [(t.format(**ren), forms[pat].format(**ren)) for t in train]
    return out


def generate_pairs(domain_name: str, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` (instruction, formula, layout-or-domain) training pairs over train layouts.

    Raises:
        ValueError: For an unknown domain name or ``n < 0``.
    """
    table = patterns(domain_name)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"pairs/{domain_name}/{seed}")
    items = [(t, f) for f, ts in table.values() for t in ts] + _task_templates(domain_name)
    layouts = [k for k, lay in LAYOUTS.items() if lay.split == "train"]
    blocks = BlocksWorld()
    out = []
    while len(out) < n:
        text, formula = rng.choice(items)
        if domain_name == "drone_nav":
            domain: SymbolicDomain = DroneNav(rng.choice(layouts))
            names = rng.sample(sorted(domain.rooms), 4)
            fill = {k: words(v) for k, v in zip("abcd", names, strict=True)}
            atoms = dict(zip("abcd", names, strict=True))
            tag = domain.layout.name
        else:
            names = rng.sample(blocks.blocks, 4)
            if "{b} spot" in text or "at the {b}" in text or rng.random() < 0.2 and \
                    "{b}_on" not in formula and "holding_{b}" not in formula:
                names[1] = rng.choice(blocks.locations)
            fill = atoms = dict(zip("abcd", names, strict=True))
            tag = "blocks"
        out.append((text.format(**fill), formula.format(**atoms), tag))
    return out


def heldout_phrasings(domain_name: str) -> list[dict]:
    """The hand-written held-out phrasings of a domain (``instruction``, ``ltl``, ``layout``)."""
    patterns(domain_name)
    return json.loads((DATA / f"phrasings_{domain_name}.json").read_text())
