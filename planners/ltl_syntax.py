"""LTLf syntax: tokenizer, precedence-climbing parser and hash-consed formula nodes.

Usage: ``from planners.ltl_syntax import parse; node = parse("G(!a) & F(b & F c)")``

The grammar is the one fixed in DESIGN.md, loosest binding first::

    iff     := implies ('<->' implies)*          left-associative (<-> is associative anyway)
    implies := or ('->' implies)?                right-associative
    or      := and ('|' and)*
    and     := temporal ('&' temporal)*
    temporal:= unary (('U' | 'R' | 'W') temporal)?   one level, right-associative
    unary   := ('!' | 'X' | 'WX' | 'F' | 'G') unary | primary
    primary := atom | 'true' | 'false' | '(' iff ')'

Atoms are ``[a-z_][a-z0-9_]*`` (``true`` and ``false`` are reserved); operators are
uppercase, so a word such as ``GFa`` or ``aUb`` is split where the case changes:
``GFa`` reads ``G F a`` and ``aUb`` reads ``a U b``. An uppercase run is read greedily
into operators, ``WX`` first, so ``WXa`` is weak next of ``a``; write ``a W X b`` (with
spaces) for "a weak-until next b". Any other uppercase letter is an error, since
atoms are lowercase.

Nodes are interned (hash-consed): structurally equal formulas are the same object,
so ``is`` compares them and caches can be keyed by node identity.
"""

from __future__ import annotations

import re
import weakref
from itertools import count

UNARY = ("!", "X", "WX", "F", "G")
BINARY_TEMPORAL = ("U", "R", "W")
_OPERATOR_WORDS = ("WX", "X", "F", "G", "U", "R", "W")  # longest first: greedy split
_ATOM_RE = re.compile(r"[a-z_][a-z0-9_]*")
_WORD_RE = re.compile(r"[A-Za-z0-9_]+")
_SYMBOLS = ("<->", "->", "(", ")", "!", "&", "|")
_OPERAND_EXPECTED = "an atom, 'true', 'false', a unary operator (! X WX F G) or '('"


class LTLSyntaxError(ValueError):
    """Malformed LTLf text.

    Attributes:
        text: The formula text that failed to parse.
        position: 0-based character offset of the offending token (``len(text)`` at the end).
        expected: What the parser expected there, in words.
    """

    def __init__(self, text: str, position: int, expected: str, found: str | None = None):
        self.text = text
        self.position = position
        self.expected = expected
        self.found = found
        where = "end of input" if found is None else repr(found)
        shown = text.replace("\n", " ").replace("\t", " ")
        super().__init__(
            f"expected {expected} at position {position}, found {where}:\n"
            f"  {shown}\n  {' ' * position}^"
        )


class Node:
    """An interned formula node; build with :func:`make`, never directly.

    Attributes:
        op: One of ``true false atom natom ! & | -> <-> X WX F G U R W`` (``natom`` is a
            negated atom, used only in negation normal form).
        args: Child nodes (``&`` and ``|`` may be n-ary in negation normal form).
        name: The atom name for ``atom``/``natom``, else ``""``.
        uid: Creation counter; a stable total order for canonical sorting.
        atoms: Every atom name occurring in the subtree.
    """

    __slots__ = ("op", "args", "name", "uid", "atoms", "cache", "__weakref__")

    def __init__(self, op: str, args: tuple[Node, ...], name: str, uid: int):
        self.op = op
        self.args = args
        self.name = name
        self.uid = uid
        self.atoms: frozenset[str] = (
            frozenset((name,)) if name else frozenset().union(*(a.atoms for a in args))
        )
        self.cache: dict = {}  # per-node memo (negation normal form, DNF), filled lazily

    def __repr__(self) -> str:
        return f"Node({to_text(self)!r})"


_INTERN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_UIDS = count()


def make(op: str, *args: Node, name: str = "") -> Node:
    """Return the unique node ``op(args)`` (or the atom ``name``), creating it if needed."""
    key = (op, name, tuple(a.uid for a in args))
    node = _INTERN.get(key)
    if node is None:
        node = Node(op, args, name, next(_UIDS))
        _INTERN[key] = node
    return node


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """Split ``text`` into ``(kind, value, position)`` tokens; kinds: sym, op, atom, const."""
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        sym = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
        if sym is not None:
            out.append(("sym", sym, i))
            i += len(sym)
            continue
        word = _WORD_RE.match(text, i)
        if word is None:
            raise LTLSyntaxError(text, i, "an atom, an operator or a parenthesis", ch)
        _split_word(text, word.group(), i, out)
        i = word.end()
    return out


def _split_word(text: str, word: str, start: int, out: list[tuple[str, str, int]]) -> None:
    """Split one alphanumeric word into operator and atom tokens at case changes."""
    j = 0
    while j < len(word):
        pos = start + j
        if word[j].isupper():
            op = next((o for o in _OPERATOR_WORDS if word.startswith(o, j)), None)
            if op is None:
                raise LTLSyntaxError(
                    text, pos, "an operator (X WX F G U R W) or a lowercase atom", word[j:]
                )
            out.append(("op", op, pos))
            j += len(op)
            continue
        atom = _ATOM_RE.match(word, j)
        if atom is None:  # a digit after an operator, e.g. "X1"
            raise LTLSyntaxError(text, pos, "an atom starting with [a-z_]", word[j:])
        value = atom.group()
        out.append(("const" if value in ("true", "false") else "atom", value, pos))
        j = atom.end()


class _Parser:
    """Recursive-descent parser over the token list (one method per precedence level)."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def fail(self, expected: str) -> LTLSyntaxError:
        tok = self.peek()
        if tok is None:
            return LTLSyntaxError(self.text, len(self.text), expected)
        return LTLSyntaxError(self.text, tok[2], expected, tok[1])

    def accept(self, *values: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok[0] in ("sym", "op") and tok[1] in values:
            self.i += 1
            return tok[1]
        return None

    def parse(self) -> Node:
        node = self.iff()
        if self.peek() is not None:
            raise self.fail("a binary operator (<-> -> | & U R W) or end of input")
        return node

    def iff(self) -> Node:
        node = self.implies()
        while self.accept("<->"):
            node = make("<->", node, self.implies())
        return node

    def implies(self) -> Node:
        node = self.disjunction()
        if self.accept("->"):
            node = make("->", node, self.implies())
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("|"):
            node = make("|", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.temporal()
        while self.accept("&"):
            node = make("&", node, self.temporal())
        return node

    def temporal(self) -> Node:
        node = self.unary()
        op = self.accept(*BINARY_TEMPORAL)
        if op:
            node = make(op, node, self.temporal())
        return node

    def unary(self) -> Node:
        op = self.accept(*UNARY)
        if op:
            return make(op, self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.fail(_OPERAND_EXPECTED)
        kind, value, _ = tok
        if kind == "atom":
            self.i += 1
            return make("atom", name=value)
        if kind == "const":
            self.i += 1
            return make(value)
        if self.accept("("):
            node = self.iff()
            if not self.accept(")"):
                raise self.fail("')' or a binary operator (<-> -> | & U R W)")
            return node
        raise self.fail(_OPERAND_EXPECTED)


def parse(text: str) -> Node:
    """Parse LTLf ``text`` into an interned syntax tree.

    Args:
        text: The formula, e.g. ``"G(!server_room) & F(kitchen & F lab)"``.

    Returns:
        The root node (binary ``&``/``|`` as written; ``->``/``<->`` kept).

    Raises:
        TypeError: If ``text`` is not a ``str``.
        LTLSyntaxError: If the text is empty or malformed.
    """
    if not isinstance(text, str):
        raise TypeError(f"formula text must be a str, got {type(text).__name__}")
    return _Parser(text).parse()


_LEVEL = {"<->": 0, "->": 1, "|": 2, "&": 3, "U": 4, "R": 4, "W": 4}


def to_text(node: Node) -> str:
    """Render a node as text; :func:`parse` reads a parse tree's text back to the same node.

    Operands of binary operators are parenthesized unless they are atoms, constants or
    unary applications, so the output relies on no precedence rule; an n-ary ``&``/``|``
    of negation normal form reads back as the equivalent left-nested binary tree.
    """
    op = node.op
    if op in ("true", "false"):
        return op
    if op == "atom":
        return node.name
    if op == "natom":
        return "!" + node.name
    if op in UNARY:
        return f"{op}{'' if op == '!' else ' '}{_operand(node.args[0])}"
    return f" {op} ".join(_operand(a) for a in node.args)


def _operand(node: Node) -> str:
    text = to_text(node)
    return text if node.op in ("true", "false", "atom", "natom", *UNARY) else f"({text})"
