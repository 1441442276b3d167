"""More varied instruction/formula pairs for the NL -> LTL translator: composed paraphrases.

Usage: ``from planners.nl2ltl_paraphrase import paraphrase_pairs; paraphrase_pairs("drone_nav",
1000, seed=0)``

:func:`envs.symbolic.instructions.generate_pairs` fills a fixed list of templates; this module
composes sentences from phrase tables instead (verb phrases with their gerund and participle,
avoidance clauses as imperatives, statements or attached phrases, sequence connectors, "in any
order" tails, clause order, politeness prefixes, dropped articles), so one pattern has thousands
of wordings. The tables were written from general English, not from the evaluation sets: the
task generator's held-out templates and the hand-written phrasings are never read here, and
:func:`paraphrase_pairs` drops any sentence that happens to equal one of them (compared with
entities masked). ``split="dev"`` draws every table entry whose index is 3 mod 7 (and only
those where a table has them), ``"train"`` the others, so a model trained on ``"train"`` can
be checked on wordings it never saw; ``"all"`` uses every entry.
"""

from __future__ import annotations

import random
import re

from envs.symbolic.base import words

GO = [("go to", "going to", "been to"), ("fly to", "flying to", "flown to"),
      ("visit", "visiting", "visited"), ("head to", "heading to", "headed to"),
      ("head over to", "heading over to", "headed over to"), ("move to", "moving to", "moved to"),
      ("get to", "getting to", "gotten to"), ("reach", "reaching", "reached"),
      ("travel to", "traveling to", "traveled to"), ("navigate to", "navigating to",
                                                     "navigated to"),
      ("proceed to", "proceeding to", "proceeded to"), ("make your way to",
                                                        "making your way to", "made your way to"),
      ("stop by", "stopping by", "stopped by"), ("drop by", "dropping by", "dropped by"),
      ("swing by", "swinging by", "swung by"), ("check out", "checking out", "checked out"),
      ("pay a visit to", "paying a visit to", "paid a visit to"), ("enter", "entering", "entered"),
      ("fly into", "flying into", "flown into"), ("go into", "going into", "gone into"),
      ("arrive at", "arriving at", "arrived at"), ("inspect", "inspecting", "inspected"),
      ("pass through", "passing through", "passed through"), ("fly over to", "flying over to",
                                                              "flown over to")]
NEVER = ["never enter {}", "do not enter {}", "don't enter {}", "do not go into {}",
         "don't go into {}", "never go into {}", "avoid {}", "stay out of {}", "keep out of {}",
         "steer clear of {}", "stay away from {}", "keep away from {}", "never visit {}",
         "do not visit {}", "don't fly into {}", "never fly through {}", "don't pass through {}",
         "do not fly through {}", "you must not enter {}", "you may not enter {}",
         "under no circumstances enter {}", "at no point enter {}", "never set foot in {}",
         "keep clear of {}", "make sure you never enter {}", "do not ever go into {}"]
BANNED = ["{} is off limits", "{} is forbidden", "{} is closed", "{} is restricted",
          "{} must be avoided", "{} is a no-fly zone", "entering {} is not allowed",
          "{} is out of bounds", "nobody may enter {}"]
ATTACHED = ["without entering {}", "without going into {}", "without passing through {}",
            "without ever entering {}", "without visiting {}", "without flying through {}",
            "while avoiding {}", "while staying out of {}", "avoiding {}", "never entering {}",
            "staying clear of {}", "keeping away from {}", "and never enter {}", "but avoid {}",
            "but stay out of {}", "but do not enter {}", "and stay away from {}"]
THEN = [", then ", " and then ", ", and then ", ", after that ", ", and after that ",
        ". after that, ", ". then ", "; then ", "; next, ", ", next ", ", afterwards ",
        " and afterwards ", ", later ", " and later ", ", subsequently ", ". when you are done, ",
        ". once there, ", ", and from there ", ". next, ", " and next "]
THEN_NOUN = [" and then {}", ", then {}", ", followed by {}", " followed by {}",
             ", then on to {}", " and after that {}", ", and then to {}", ", and next {}"]
ANY_ORDER = ["", " in any order", ", in any order", " in either order",
             ", the order does not matter", ", order doesn't matter", " in whichever order",
             "; any order is fine", ", whichever comes first"]
FINISH = ["finish in {}", "end in {}", "land in {}", "stop at {}", "end up in {}",
          "finish at {}", "end your flight in {}", "come to rest in {}", "make {} your final stop",
          "end the trip at {}", "terminate in {}", "touch down in {}"]
PREFIX = ["", "", "", "", "please ", "now ", "ok, ", "okay, ", "robot, ", "the mission: ",
          "your task: ", "instructions: "]
PREFIX_VERB = ["i want you to ", "i need you to ", "you should ", "you must ", "can you ",
               "could you ", "your job is to ", "try to ", "go ahead and "]
SUFFIX = [".", ".", ".", "", "!", " please.", ", please.", " thanks.", " quickly.",
          " carefully.", " asap."]
PUT = ["put {} on {}", "place {} on {}", "set {} on {}", "stack {} on {}", "move {} onto {}",
       "put {} on top of {}", "place {} atop {}", "lay {} on {}", "rest {} on {}",
       "drop {} onto {}", "position {} on {}", "get {} onto {}", "stack {} onto {}",
       "pile {} on {}", "transfer {} onto {}", "place {} on top of {}", "set {} down on {}"]
PUT_STATE = ["{} should end up on {}", "{} goes on {}", "make {} sit on {}", "i want {} on {}",
             "make sure {} is on top of {}", "the goal is {} on {}",
             "arrange the blocks so that {} is on {}", "get {} stacked on {}",
             "{} needs to be on {}", "have {} resting on {}"]
LOC = ["the {} spot", "the {}", "the {} position", "the {} side of the table",
       "the {} of the table", "the {} place", "the {} slot"]
BLOCK = ["{}", "the {} block", "the {} block", "the {} one", "the {} cube", "block {}"]
HOLD = ["pick up {}", "grab {}", "lift {}", "take {}", "grasp {}", "hold {}", "pick {} up",
        "take hold of {}", "get hold of {}", "seize {}"]
HOLD_ING = ["picking up {}", "grabbing {}", "lifting {}", "holding {}", "touching {}",
            "moving {}", "grasping {}", "handling {}"]
DONT_HOLD = ["never pick up {}", "do not pick up {}", "don't touch {}", "leave {} alone",
             "keep your hands off {}", "never grab {}", "{} must not be picked up",
             "avoid touching {}", "do not move {}", "never grasp {}", "do not handle {}",
             "never lift {}", "don't lift {}"]
DRONE_PATTERNS = ("reach", "seq2", "seq3", "avoid", "seq_avoid", "both", "all3", "avoid2",
                  "after", "until", "response", "response_reach", "twice", "finish")
BLOCKS_PATTERNS = ("on", "move", "tower", "avoid", "order", "hold", "seq", "both", "never_on",
                   "response", "twice")


class _Composer:
    """Draws phrases for one split (see the module docstring)."""

    def __init__(self, rng: random.Random, split: str) -> None:
        if split not in ("train", "dev", "all"):
            raise ValueError(f"split must be train, dev or all, got {split!r}")
        self.rng, self.split = rng, split

    def c(self, table: list):
        """One entry of ``table`` for this split."""
        if self.split == "all":
            return self.rng.choice(table)
        dev = [e for i, e in enumerate(table) if i % 7 == 3]
        pool = dev if self.split == "dev" and dev else [
            e for i, e in enumerate(table) if i % 7 != 3 or not dev]
        return self.rng.choice(pool)

    def p(self, slot: str) -> str:
        """A place phrase for ``slot``."""
        return ("{" + slot + "}") if self.rng.random() < 0.15 else ("the {" + slot + "}")

    def go(self, slot: str, form: int = 0) -> str:
        """A verb phrase (form 0 base, 1 gerund, 2 participle) to the place ``slot``."""
        return f"{self.c(GO)[form]} {self.p(slot)}"

    def avoid(self, main: str, slots: str) -> str:
        """``main`` with an avoidance of the place(s) ``slots`` ("c" or "cd") in some position."""
        r, places = self.rng, self.p(slots[0])
        if len(slots) == 2:
            places += self.rng.choice([" and ", " or "]) + self.p(slots[1])
        kind = r.randrange(4)
        if kind == 0:
            return f"{main} {self.c(ATTACHED).format(places)}"
        clause = self.c(NEVER if kind < 3 else BANNED).format(places)
        if kind == 1:
            return f"{main}{r.choice(['. ', '; ', ', but ', ', and '])}{clause}"
        return f"{clause}{r.choice(['. ', '; ', ', but ', ' and ', ', so '])}{main}"

    def seq(self, slots: str) -> str:
        """A sequence of visits to the places ``slots`` in order."""
        r = self.rng
        a, rest = slots[0], slots[1:]
        kind = r.randrange(6 if len(slots) == 2 else 3)
        if kind == 0:
            text = r.choice(["", "first ", "first, "]) + self.go(a)
            for k, s in enumerate(rest):
                last = k == len(rest) - 1 and len(rest) > 1
                text += (", and finally " if last and r.random() < .5 else self.c(THEN)) + \
                    self.go(s)
            return text
        if kind == 1:
            text = r.choice(["", "first "]) + self.go(a)
            for s in rest:
                text += self.c(THEN_NOUN).format(self.p(s))
            return text
        if kind == 2:
            places = [self.p(s) for s in slots]
            return f"{self.c(GO)[0]} " + ", ".join(places[:-1]) + " and " + places[-1] + \
                r.choice([", in that order", " in this order", ", in order"])
        b = rest[0]
        return r.choice([
            f"after {self.go(a, 1)}, {self.go(b)}", f"once you have {self.go(a, 2)}, "
            f"{self.go(b)}", f"{self.go(b)} after {self.go(a, 1)}",
            f"{self.go(b)}, but first {self.go(a)}", f"{self.go(a)} before {self.go(b, 1)}",
            f"start by {self.go(a, 1)}, then {self.go(b)}",
            f"when you have {self.go(a, 2)}, {self.go(b)}"])

    def drone(self, pattern: str) -> tuple[str, str]:
        """``(text, formula)`` with slots ``{a}..{d}`` for a DroneNav pattern."""
        r, go = self.rng, self.go
        if pattern == "reach":
            return r.choice([go("a"), f"your destination is {self.p('a')}",
                             f"fly the drone to {self.p('a')}", f"{self.p('a')} is where "
                             "you need to go"]), "F({a})"
        if pattern in ("seq2", "seq3"):
            three = pattern == "seq3"
            return self.seq("abc" if three else "ab"), (
                "F({a} & F({b} & F({c})))" if three else "F({a} & F({b}))")
        if pattern == "avoid":
            return self.avoid(go("a"), "c"), "F({a}) & G(!{c})"
        if pattern == "seq_avoid":
            return self.avoid(self.seq("ab"), "c"), "F({a} & F({b})) & G(!{c})"
        if pattern == "avoid2":
            return self.avoid(go("a"), "cd"), "F({a}) & G(!{c}) & G(!{d})"
        if pattern in ("both", "all3"):
            places = [self.p(s) for s in ("ab" if pattern == "both" else "abc")]
            listed = ", ".join(places[:-1]) + " and " + places[-1]
            text = r.choice([f"{self.c(GO)[0]} {listed}{self.c(ANY_ORDER)}",
                             f"{self.c(GO)[0]} both {listed}" if pattern == "both" else
                             f"{self.c(GO)[0]} all of {listed}",
                             f"make sure to {self.c(GO)[0]} {listed}",
                             f"in any order, {self.c(GO)[0]} {listed}",
                             f"{listed} {r.choice(['must', 'should'])} all be visited",
                             f"{go('a')} and also {go('b')}" if pattern == "both" else
                             f"{self.c(GO)[0]} {listed}, any order"])
            return text, "F({a}) & F({b})" + ("" if pattern == "both" else " & F({c})")
        if pattern == "after":
            b_only = r.choice([f"but only after {go('a', 1)}", f"but not before {go('a', 1)}",
                               f"but only once you have {go('a', 2)}",
                               f"but not until you have {go('a', 2)}"])
            never_b = self.c(NEVER).format(self.p("b"))
            return r.choice([f"{go('b')}, {b_only}",
                             f"{never_b} until you have {go('a', 2)}, then {go('b')}",
                             f"{never_b} before {go('a', 1)}; then {go('b')}",
                             f"{go('b')}. you may enter it only after {go('a', 1)}"]), \
                "(!{b} U {a}) & F({b})"
        if pattern == "until":
            never_c = self.c(NEVER).format(self.p("c"))
            return r.choice([f"{never_c} until you {go('a')}", f"{never_c} until you have "
                             f"{go('a', 2)}", f"until you {go('a')}, {never_c}",
                             f"{never_c} before {go('a', 1)}"]), "!{c} U {a}"
        if pattern in ("response", "response_reach"):
            rule = r.choice([f"whenever you {go('a')}, {go('b')} afterwards",
                             f"every time you {go('a')}, {go('b')} later",
                             f"each time you {go('a')}, {go('b')} after that",
                             f"after every visit to {self.p('a')}, {go('b')}",
                             f"any visit to {self.p('a')} must be followed by a visit to "
                             f"{self.p('b')}", f"if you ever {go('a')}, you must {go('b')} "
                             "afterwards"])
            if pattern == "response":
                return rule, "G({a} -> F({b}))"
            return f"{go('a')}{r.choice(['; ', ', and ', '. '])}{rule}", \
                "F({a}) & G({a} -> F({b}))"
        if pattern == "twice":
            return r.choice([f"{go('a')} twice", f"{go('a')} two times",
                             f"{go('a')} at least twice", f"{go('a')}, leave, and come back",
                             f"{go('a')}, then {go('a')} again after leaving it",
                             f"make two separate visits to {self.p('a')}"]), \
                "F({a} & F(!{a} & F({a})))"
        fin = self.c(FINISH).format(self.p("b"))
        return r.choice([f"{go('a')} and {fin}", f"{go('a')}, then {fin}", f"{go('a')}; {fin}",
                         f"{fin}, but {go('a')} first", f"{fin} after {go('a', 1)}"]), \
            "F({a}) & F({b} & WX false)"

    def blocks(self, pattern: str) -> tuple[str, str]:
        """``(text, formula)`` with slots ``{a}..{d}`` for a BlocksWorld pattern."""
        r = self.rng

        def b(s):
            return self.c(BLOCK).format("{" + s + "}")

        def put(x, y, loc=False):
            where = self.c(LOC).format("{" + y + "}") if loc else b(y)
            return self.c(PUT if r.random() < .7 else PUT_STATE).format(b(x), where)

        if pattern in ("on", "move"):
            return put("a", "b", pattern == "move"), "F({a}_on_{b})"
        if pattern == "tower":
            return r.choice([f"{put('a', 'b')} and {put('b', 'c')}",
                             f"build a tower: {b('a')} on {b('b')} on {b('c')}",
                             f"stack {b('a')} on {b('b')} on {b('c')}",
                             f"make a stack with {b('a')} on top, {b('b')} in the middle and "
                             f"{b('c')} at the bottom", f"{put('a', 'b')}, with {b('b')} "
                             f"sitting on {b('c')}"]), "F({a}_on_{b} & {b}_on_{c})"
        if pattern == "avoid":
            dont = self.c(DONT_HOLD).format(b("c"))
            return r.choice([f"{put('a', 'b')} without {self.c(HOLD_ING).format(b('c'))}",
                             f"{put('a', 'b')}, but {dont}", f"{dont}; {put('a', 'b')}",
                             f"{put('a', 'b')}. {dont}"]), "F({a}_on_{b}) & G(!holding_{c})"
        if pattern == "order":
            return r.choice([f"{put('a', 'b')}, but {self.c(HOLD).format(b('c'))} first",
                             f"{self.c(HOLD).format(b('c'))} before you touch {b('a')}, and "
                             f"{put('a', 'b')}", f"don't touch {b('a')} until you have "
                             f"picked up {b('c')}; {put('a', 'b')}",
                             f"before {self.c(HOLD_ING).format(b('a'))}, "
                             f"{self.c(HOLD).format(b('c'))}, then {put('a', 'b')}"]), \
                "F({a}_on_{b}) & (!holding_{a} U holding_{c})"
        if pattern == "hold":
            return self.c(HOLD).format(b("a")), "F(holding_{a})"
        if pattern == "seq":
            return f"{put('a', 'b')}{self.c(THEN)}{put('c', 'd')}", \
                "F({a}_on_{b} & F({c}_on_{d}))"
        if pattern == "both":
            return f"{put('a', 'b')} and {put('c', 'd')}{self.c(ANY_ORDER)}", \
                "F({a}_on_{b}) & F({c}_on_{d})"
        if pattern == "never_on":
            never = r.choice(["never put {} on {}", "{} must never be on {}",
                              "don't let {} sit on {}", "never stack {} on {}",
                              "at no point should {} be on {}"]).format(b("c"), b("d"))
            return f"{put('a', 'b')}{r.choice([', but ', '; ', '. '])}{never}", \
                "F({a}_on_{b}) & G(!{c}_on_{d})"
        if pattern == "response":
            return r.choice([f"whenever you {self.c(HOLD).format(b('a'))}, put it on {b('b')}",
                             f"every time you {self.c(HOLD).format(b('a'))}, place it on "
                             f"{b('b')} later", f"if you ever {self.c(HOLD).format(b('a'))}, "
                             f"it has to end up on {b('b')} afterwards"]), \
                "G(holding_{a} -> F({a}_on_{b}))"
        return r.choice([f"{self.c(HOLD).format(b('a'))} twice",
                         f"{self.c(HOLD).format(b('a'))} two times, putting it down in between",
                         f"{self.c(HOLD).format(b('a'))}, put it down, and "
                         f"{self.c(HOLD).format('it')} again"]), \
            "F(holding_{a} & F(!holding_{a} & F(holding_{a})))"


_VERBS = {t.split()[0] for t in [g[0] for g in GO] + PUT + HOLD} | {"build", "make", "start"}


def _polish(rng: random.Random, text: str, domain_name: str) -> str:
    """Prefix (verb-taking ones before a verb only), suffix and sometimes dropped articles."""
    if rng.random() < 0.1:
        text = text.replace("the ", "")
    prefixes = PREFIX + (["drone, "] if domain_name == "drone_nav" else [])
    if text.split()[0] in _VERBS:
        prefixes += PREFIX_VERB
    return rng.choice(prefixes) + text + rng.choice(SUFFIX)


def _masked(text: str) -> str:
    """``text`` lowercased, entities (``{a}`` slots or placeholders) masked, punctuation gone."""
    text = re.sub(r"\{[a-z]+\}|\bx[0-9]+\b", "E", text.lower())
    return re.sub(r"[^a-zE]+", " ", text).strip()


def evaluation_wordings(domain_name: str) -> set[str]:
    """Masked held-out templates and hand-written phrasings of a domain (never generated)."""
    from envs.symbolic import BlocksWorld, DroneNav
    from envs.symbolic.instructions import heldout_phrasings
    from envs.symbolic.tasks import BLOCKS_TEMPLATES, DRONE_TEMPLATES
    from planners.nl2ltl import lift

    table = DRONE_TEMPLATES if domain_name == "drone_nav" else BLOCKS_TEMPLATES
    out = {_masked(t) for _, held in table.values() for t in held}
    for row in heldout_phrasings(domain_name):
        domain = DroneNav(row["layout"]) if domain_name == "drone_nav" else BlocksWorld()
        out.add(_masked(lift(row["instruction"], domain)[0]))
    return out


def paraphrase_pairs(domain_name: str, n: int, seed: int = 0, split: str = "all"
                     ) -> list[tuple[str, str, str]]:
    """``n`` (instruction, formula, layout-or-"blocks") pairs over train layouts.

    Raises:
        ValueError: For an unknown domain, split, or ``n < 0``.
    """
    from envs.symbolic import BlocksWorld, DroneNav
    from envs.symbolic.drone_nav import LAYOUTS

    if domain_name not in ("drone_nav", "blocks_world"):
        raise ValueError(f"domain must be drone_nav or blocks_world, got {domain_name!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"paraphrase/{domain_name}/{seed}/{split}")
    comp = _Composer(rng, split)
    banned = evaluation_wordings(domain_name)
    layouts = sorted(k for k, lay in LAYOUTS.items() if lay.split == "train")
    blocks = BlocksWorld()
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        if domain_name == "drone_nav":
            text, formula = comp.drone(rng.choice(DRONE_PATTERNS))
            domain = DroneNav(rng.choice(layouts))
            names, tag = rng.sample(sorted(domain.rooms), 4), domain.layout.name
        else:
            pattern = rng.choice(BLOCKS_PATTERNS)
            text, formula = comp.blocks(pattern)
            names, tag = rng.sample(blocks.blocks, 4), "blocks"
            if pattern == "move":
                names[1] = rng.choice(blocks.locations)
        text = _polish(rng, text, domain_name)
        if _masked(text) in banned:
            continue
        out.append((text.format(**{k: words(v) for k, v in zip("abcd", names, strict=True)}),
                    formula.format(**dict(zip("abcd", names, strict=True))), tag))
    return out
