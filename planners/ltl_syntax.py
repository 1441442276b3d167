"""LTLf syntax: tokenizer, operator-precedence parser and hash-consed formula nodes.

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


_BINARY = {"<->": (0, False), "->": (1, True), "|": (2, False), "&": (3, False),
           "U": (4, True), "R": (4, True), "W": (4, True)}  # op -> (level, right-associative)
_BINARY_EXPECTED = "a binary operator (<-> -> | & U R W)"


def _parse_tokens(text: str, toks: list[tuple[str, str, int]]) -> Node:
    """Operator-precedence parsing with explicit stacks (no recursion: any depth parses).

    ``ops`` holds pending unary operators, binary operators and open parentheses (``"("``
    with its position); ``vals`` holds finished operands. A binary operator first applies the
    pending operators that bind at least as tightly (strictly, for right-associative ones).
    """
    vals: list[Node] = []
    ops: list[tuple[str, str, int]] = []  # (kind: "unary" | "binary" | "paren", value, pos)

    def reduce_top() -> None:
        kind, op, _ = ops.pop()
        if kind == "unary":
            vals.append(make(op, vals.pop()))
        else:
            right = vals.pop()
            vals.append(make(op, vals.pop(), right))

    def fail(i: int, expected: str) -> LTLSyntaxError:
        if i >= len(toks):
            return LTLSyntaxError(text, len(text), expected)
        return LTLSyntaxError(text, toks[i][2], expected, toks[i][1])

    i, operand, depth = 0, True, 0  # operand: an operand, unary operator or '(' comes next
    while True:
        tok = toks[i] if i < len(toks) else None
        if operand:
            if tok is None:
                raise fail(i, _OPERAND_EXPECTED)
            kind, value, pos = tok
            if kind in ("sym", "op") and value in UNARY:
                ops.append(("unary", value, pos))
            elif kind == "sym" and value == "(":
                ops.append(("paren", "(", pos))
                depth += 1
            elif kind == "atom":
                vals.append(make("atom", name=value))
                operand = False
            elif kind == "const":
                vals.append(make(value))
                operand = False
            else:
                raise fail(i, _OPERAND_EXPECTED)
            i += 1
            continue
        open_paren = depth > 0
        if tok is None:
            if open_paren:
                raise fail(i, f"')' or {_BINARY_EXPECTED}")
            while ops:
                reduce_top()
            return vals[0]
        kind, value, pos = tok
        if kind in ("sym", "op") and value in _BINARY:
            level, right = _BINARY[value]
            while ops and ops[-1][0] != "paren" and (
                    ops[-1][0] == "unary" or _BINARY[ops[-1][1]][0] > level
                    or (_BINARY[ops[-1][1]][0] == level and not right)):
                reduce_top()
            ops.append(("binary", value, pos))
            operand = True
        elif kind == "sym" and value == ")" and open_paren:
            while ops[-1][0] != "paren":
                reduce_top()
            ops.pop()
            depth -= 1
        elif open_paren:
            raise fail(i, f"')' or {_BINARY_EXPECTED}")
        else:
            raise fail(i, f"{_BINARY_EXPECTED} or end of input")
        i += 1


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
    return _parse_tokens(text, _tokens(text))


_LEVEL = {"<->": 0, "->": 1, "|": 2, "&": 3, "U": 4, "R": 4, "W": 4}


def to_text(node: Node) -> str:
    """Render a node as text; :func:`parse` reads a parse tree's text back to the same node.

    Operands of binary operators are parenthesized unless they are atoms, constants or
    unary applications, so the output relies on no precedence rule; an n-ary ``&``/``|``
    of negation normal form reads back as the equivalent left-nested binary tree.
    Iterative, so formulas of any depth render.
    """
    out: list[str] = []
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        op = item.op
        if op in ("true", "false"):
            out.append(op)
        elif op == "atom":
            out.append(item.name)
        elif op == "natom":
            out.append("!" + item.name)
        elif op in UNARY:
            out.append(op if op == "!" else op + " ")
            stack.extend(_operand(item.args[0]))
        else:
            parts: list[Node | str] = []
            for k, a in enumerate(item.args):
                if k:
                    parts.append(f" {op} ")
                parts.extend(_operand(a)[::-1])
            stack.extend(reversed(parts))
    return "".join(out)


def _operand(node: Node) -> list[Node | str]:
    """Stack items (pushed in this order) rendering ``node`` as an operand."""
    if node.op in ("true", "false", "atom", "natom", *UNARY):
        return [node]
    return [")", node, "("]
