"""Character-level prefix automaton of LTLf formulas over a fixed atom vocabulary.

Usage::

    from planners.ltl_grammar import FormulaAutomaton
    fa = FormulaAutomaton({"lab", "cafe"})
    fa.is_prefix("F(lab & G(!ca")      # True: some completion parses
    fa.is_complete("F(lab) & G(!cafe)")  # True: parses, every atom known
    fa.completion("F(lab & G(!ca")     # 'fe))': a shortest completion

It reads text the way :mod:`planners.ltl_syntax` lexes and parses it (DESIGN.md's syntax):
symbols ``<-> -> ( ) ! & |``, words ``[A-Za-z0-9_]+`` split where the case changes, an
uppercase run read greedily as operators (``WX`` before ``W``), atoms ``[a-z_][a-z0-9_]*``.
Whitespace is only the space character. Every formula is ``operand (binary operand)*`` with
operand ``unary* (atom | true | false | '(' formula ')')``, so a state is what comes next (an
operand or a binary operator), the open parentheses (at most ``max_depth``) and the lexeme being
read: a partial atom (a node of the atom trie, so only prefixes of known atoms survive), a
pending ``W`` (``WX`` or the binary ``W``, decided by the next character), or a partial ``<->``
or ``->``. Any text the automaton accepts parses with :class:`planners.ltl.LTLf` and uses only
the given atoms; :meth:`FormulaAutomaton.finish_length` is the length of the shortest completion
written with the characters a tokenizer has single tokens for, which constrained decoding uses
as its token budget (one token per character at worst).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

_ATOM = re.compile(r"[a-z_][a-z0-9_]*\Z")
_ATOM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
CONSTANTS = ("true", "false")
OPERAND, OPERATOR = 0, 1  # what the parser expects next
_UNARY_LETTERS = {"X", "F", "G"}
_BINARY_CHARS = {"&", "|", "U", "R"}


class FormulaState(NamedTuple):
    """Where a text prefix leaves the automaton.

    ``mode`` is :data:`OPERAND` or :data:`OPERATOR` (what the parser expects once the current
    lexeme ends), ``depth`` the open parentheses, ``lex`` the lexeme being read (``""`` none,
    ``"atom"`` at atom-trie ``node``, ``"W?"`` a ``W`` that must become ``WX``, ``"W"`` the
    binary ``W`` (the next character must not be ``X``), ``"<"``, ``"<-"`` or ``"-"``).
    """

    mode: int
    depth: int
    lex: str = ""
    node: int = 0


START = FormulaState(OPERAND, 0)


class FormulaAutomaton:
    """Prefixes of syntactically valid LTLf formulas whose atoms are all in ``atoms``.

    Args:
        atoms: The allowed atom names (``true``/``false`` are always allowed).
        max_depth: The most parentheses open at once (keeps the state space finite).
        inner: The characters a completion may write right after the previous one (a
            tokenizer's single-character tokens); None: every character.
        first: The characters a completion may write where a lexeme starts (atom-initial
            characters and ``)``: single-character tokens, possibly after a space); None:
            ``inner``. Completions only use these, so :meth:`finish_length` is the tokens a
            completion needs at most (infinite where none exists).

    Raises:
        ValueError: If an atom is not ``[a-z_][a-z0-9_]*``, or ``max_depth < 0``.
    """

    def __init__(self, atoms: Iterable[str], max_depth: int = 8,
                 inner: Iterable[str] | None = None, first: Iterable[str] | None = None
                 ) -> None:
        names = sorted(set(atoms) | set(CONSTANTS))
        bad = [a for a in names if not _ATOM.match(a)]
        if bad:
            raise ValueError(f"atoms must match [a-z_][a-z0-9_]*, got {bad[:5]}")
        if max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, got {max_depth}")
        self.atoms, self.max_depth = frozenset(names) - set(CONSTANTS), max_depth
        self.children: list[dict[str, int]] = [{}]
        self.terminal: list[bool] = [False]
        for name in names:
            node = 0
            for ch in name:
                nxt = self.children[node].get(ch)
                if nxt is None:
                    nxt = self.children[node][ch] = len(self.children)
                    self.children.append({})
                    self.terminal.append(False)
                node = nxt
            self.terminal[node] = True
        every = frozenset(_ATOM_CHARS | set(")>-X"))
        self.inner = every if inner is None else frozenset(inner)
        self.first = self.inner if first is None else frozenset(first) | self.inner
        self.rest: list[float] = [0] * len(self.children)  # fewest chars to finish an atom
        for node in reversed(range(len(self.children))):  # children have larger indices
            ok = self.first if node == 0 else self.inner
            self.rest[node] = 0 if self.terminal[node] else 1 + min(
                (self.rest[k] for c, k in self.children[node].items() if c in ok),
                default=math.inf)
        self.shortest_operand = self.rest[0]

    def step(self, s: FormulaState, ch: str) -> FormulaState | None:
        """The state after reading ``ch`` in state ``s``, or None if no formula continues so."""
        if s.lex == "atom":
            nxt = self.children[s.node].get(ch) if ch in _ATOM_CHARS else None
            if nxt is not None:
                return FormulaState(s.mode, s.depth, "atom", nxt)
            if ch in _ATOM_CHARS or not self.terminal[s.node]:
                return None
            return self.step(FormulaState(OPERATOR, s.depth), ch)
        if s.lex == "W?":  # an operand is expected: only WX (weak next) can follow
            return FormulaState(OPERAND, s.depth) if ch == "X" else None
        if s.lex == "W":  # the binary W; "WX" would lex as weak next
            return None if ch == "X" else self.step(FormulaState(OPERAND, s.depth), ch)
        if s.lex == "<":
            return FormulaState(s.mode, s.depth, "<-") if ch == "-" else None
        if s.lex in ("<-", "-"):
            return FormulaState(OPERAND, s.depth) if ch == ">" else None
        if ch == " ":
            return s
        if s.mode == OPERAND:
            if ch == "(":
                return FormulaState(OPERAND, s.depth + 1) if s.depth < self.max_depth else None
            if ch == "!" or ch in _UNARY_LETTERS:
                return s
            if ch == "W":
                return FormulaState(OPERAND, s.depth, "W?")
            nxt = self.children[0].get(ch)
            return None if nxt is None else FormulaState(OPERAND, s.depth, "atom", nxt)
        if ch == ")":
            return FormulaState(OPERATOR, s.depth - 1) if s.depth > 0 else None
        if ch in _BINARY_CHARS:
            return FormulaState(OPERAND, s.depth)
        if ch == "W":
            return FormulaState(OPERATOR, s.depth, "W")
        if ch in ("<", "-"):
            return FormulaState(OPERATOR, s.depth, ch)
        return None

    def feed(self, s: FormulaState | None, text: str) -> FormulaState | None:
        """The state after reading ``text`` from ``s`` (None once it leaves the language)."""
        for ch in text:
            if s is None:
                return None
            s = self.step(s, ch)
        return s

    def accepts_end(self, s: FormulaState | None) -> bool:
        """Whether the text read so far is a complete formula (the end may come now)."""
        if s is None or s.depth:
            return False
        return (s.lex == "" and s.mode == OPERATOR) or (s.lex == "atom" and self.terminal[s.node])

    def finish_length(self, s: FormulaState) -> float:
        """Characters of the shortest completion of ``s`` (see :meth:`completion`; inf: none)."""
        operand, inner = self.shortest_operand, self.inner
        arrow = 1 + operand if ">" in inner else math.inf
        head = {"atom": self.rest[s.node], "W?": 1 + operand if "X" in inner else math.inf,
                "W": operand, "<": 1 + arrow if "-" in inner else math.inf, "<-": arrow,
                "-": arrow}.get(s.lex)
        if head is None:
            head = operand if s.mode == OPERAND else 0
        return head + (s.depth if ")" in self.first or not s.depth else math.inf)

    def completion(self, text: str) -> str:
        """A shortest text that completes the prefix ``text`` into a formula.

        Raises:
            ValueError: If ``text`` is not a prefix of a formula over the atoms (or none of
                its completions uses only the writable characters).
        """
        s = self.feed(START, text)
        if s is None or self.finish_length(s) == math.inf:
            raise ValueError(f"{text!r} is not a prefix of a formula over the atoms")
        out = []
        while not self.accepts_end(s):
            ch = self.finishing_char(s)
            out.append(ch)
            s = self.step(s, ch)
        return "".join(out)

    def finishing_char(self, s: FormulaState) -> str:
        """The next character of a shortest completion of ``s`` (``s`` not accepting)."""
        if s.lex == "atom":
            if not self.terminal[s.node]:
                return min(((c, k) for c, k in self.children[s.node].items() if c in self.inner),
                           key=lambda kv: self.rest[kv[1]])[0]
            return ")"
        if s.lex in ("<-", "-"):
            return ">"
        if s.lex == "<":
            return "-"
        if s.lex == "W?":
            return "X"
        if s.lex == "W" or s.mode == OPERAND:
            return min(((c, k) for c, k in self.children[0].items() if c in self.first),
                       key=lambda kv: self.rest[kv[1]])[0]
        return ")"

    def is_prefix(self, text: str) -> bool:
        """Whether some completion of ``text`` is a formula over the atoms."""
        return self.feed(START, text) is not None

    def is_complete(self, text: str) -> bool:
        """Whether ``text`` is a formula over the atoms."""
        return self.accepts_end(self.feed(START, text))
