"""Explicit deterministic finite automata over letters that are sets of atoms.

Usage: ``dfa = LTLf("F a").to_dfa(); s = dfa.step(dfa.initial, {"a"}); s in dfa.accepting``

A :class:`DFA` reads a finite trace s0..sn letter by letter from ``initial`` and accepts
iff the state after the last letter is accepting; the empty word is never a trace.
Letters that move every state alike share one column of the transition table, so a
step is two lookups. :func:`minimize` is Hopcroft's partition refinement and
:func:`difference` a breadth-first search of the product automaton.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

Letter = frozenset[str]


def as_letter(letter: object, what: str = "letter") -> Letter:
    """Return ``letter`` as a frozenset of atom names, rejecting a bare string.

    Raises:
        ValueError: If ``letter`` is a ``str`` or not an iterable of strings.
    """
    if isinstance(letter, frozenset) and all(isinstance(a, str) for a in letter):
        return letter
    if isinstance(letter, (str, bytes)):
        raise ValueError(f"{what} is the string {letter!r}; a letter is a set of atoms, "
                         f"e.g. {{{letter!r}}}")
    try:
        out = frozenset(letter)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what} must be a set of atom names, got {letter!r}") from None
    bad = [a for a in out if not isinstance(a, str)]
    if bad:
        raise ValueError(f"{what} must contain only str atom names, got {bad[0]!r}")
    return out


class DFA:
    """An explicit DFA whose letters are sets of atoms.

    Attributes:
        letters: The alphabet, each letter a frozenset of atoms (first-seen order, no repeats).
        atoms: The atoms the automaton reads; a letter is looked up by its intersection with
            them, so atoms outside this set are irrelevant.
        initial: The start state (states are ``0..n_states-1``).
        accepting: States in which a trace may end.
        live: States from which an accepting state is reachable in zero or more steps.
        n_states: Number of states.
    """

    def __init__(self, letters: Sequence[Iterable[str]], table: Sequence[Sequence[int]],
                 initial: int, accepting: Iterable[int], *,
                 letter_column: Sequence[int] | None = None,
                 atoms: Iterable[str] | None = None, _checked: bool = False):
        """Build a DFA from a transition table.

        Args:
            letters: The alphabet; each letter an iterable of atom names, all distinct.
            table: ``table[state][column]`` is the next state.
            initial: The start state.
            accepting: The accepting states.
            letter_column: Column of ``table`` read by each letter (default: letter i reads
                column i).
            atoms: Atoms that matter (default: every atom of every letter).

        Raises:
            ValueError: On repeated letters, out-of-range states or columns, or two letters
                that agree on ``atoms`` but read different columns.
        """
        # _checked: built by this package from valid parts (skips the O(table) range checks)
        self.letters: tuple[Letter, ...] = tuple(letters) if _checked else tuple(
            as_letter(x, f"letters[{i}]") for i, x in enumerate(letters))
        if not self.letters:
            raise ValueError("letters must not be empty")
        if len(set(self.letters)) != len(self.letters):
            raise ValueError("letters must be distinct")
        self.n_states = len(table)
        cols = list(range(len(self.letters))) if letter_column is None else list(letter_column)
        if len(cols) != len(self.letters):
            raise ValueError("letter_column must have one entry per letter")
        width = len(table[0]) if table else 0
        for s, row in enumerate(() if _checked else table):
            if len(row) != width or any(not 0 <= t < self.n_states for t in row):
                raise ValueError(f"table[{s}] must list {width} states in 0..{self.n_states - 1}")
        if any(not 0 <= c < width for c in cols):
            raise ValueError(f"letter_column entries must be in 0..{width - 1}")
        if not 0 <= initial < self.n_states:
            raise ValueError(f"initial={initial} is not a state (0..{self.n_states - 1})")
        self.initial = initial
        self.accepting = frozenset(accepting)
        if any(not 0 <= s < self.n_states for s in self.accepting):
            raise ValueError("accepting contains a state out of range")
        self.atoms: frozenset[str] = (frozenset().union(*self.letters) if atoms is None
                                      else frozenset(atoms))
        # Letters that move every state alike share one column.
        signature: dict[tuple[int, ...], int] = {}
        remap = [signature.setdefault(col, len(signature)) for col in zip(*table, strict=True)]
        self._table = [list(row) for row in zip(*signature, strict=True)]
        self._column = [remap[c] for c in cols]
        self._index: dict[Letter, int] = dict(zip(self.letters, self._column, strict=True))
        self._restricted: dict[Letter, int] = {}
        for letter, col in self._index.items():
            key = letter & self.atoms
            if self._restricted.setdefault(key, col) != col:
                raise ValueError(f"letters agreeing on atoms {sorted(key)} read different columns")
        self.live = _coreachable(self._table, self.accepting)

    @property
    def n_columns(self) -> int:
        """Number of distinct letter behaviours (columns of the transition table)."""
        return len(self._table[0]) if self._table else 0

    def column(self, letter: Iterable[str]) -> int:
        """Return the table column ``letter`` reads.

        Raises:
            ValueError: If ``letter`` (restricted to :attr:`atoms`) is not in the alphabet.
        """
        if type(letter) is set:
            letter = frozenset(letter)
        col = self._index.get(letter) if type(letter) is frozenset else None
        if col is not None:
            return col
        key = as_letter(letter) & self.atoms
        col = self._restricted.get(key)
        if col is None:
            raise ValueError(f"letter {sorted(as_letter(letter))} is not in the alphabet "
                             f"({len(self.letters)} letters over atoms {sorted(self.atoms)})")
        return col

    def step(self, state: int, letter: Iterable[str]) -> int:
        """Return the state reached from ``state`` by reading ``letter`` (a set of atoms).

        Raises:
            ValueError: If ``state`` is out of range or ``letter`` not in the alphabet.
        """
        if not 0 <= state < self.n_states:
            raise ValueError(f"state={state} is not a state (0..{self.n_states - 1})")
        return self._table[state][self.column(letter)]

    def accepts(self, trace: Iterable[Iterable[str]]) -> bool:
        """Whether the non-empty ``trace`` (a sequence of letters) ends in an accepting state.

        Raises:
            ValueError: If the trace is empty or a letter is not in the alphabet.
        """
        state, empty = self.initial, True
        for letter in trace:
            state, empty = self._table[state][self.column(letter)], False
        if empty:
            raise ValueError("trace must be non-empty (the empty word is never a trace)")
        return state in self.accepting

    def successors(self, state: int) -> dict[Letter, int]:
        """Map every letter of the alphabet to the state it leads to from ``state``."""
        if not 0 <= state < self.n_states:
            raise ValueError(f"state={state} is not a state (0..{self.n_states - 1})")
        row = self._table[state]
        return {letter: row[col] for letter, col in self._index.items()}

    def __repr__(self) -> str:
        return (f"DFA(n_states={self.n_states}, letters={len(self.letters)}, "
                f"columns={self.n_columns}, accepting={len(self.accepting)}, "
                f"live={len(self.live)})")


def _coreachable(table: list[list[int]], accepting: frozenset[int]) -> frozenset[int]:
    """States from which some state of ``accepting`` is reachable."""
    preds: list[set[int]] = [set() for _ in table]
    for s, row in enumerate(table):
        for t in row:
            preds[t].add(s)
    seen = set(accepting)
    todo = list(accepting)
    while todo:
        for p in preds[todo.pop()]:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return frozenset(seen)


WIDE = 16
"""From this many table columns on, :func:`minimize` refines with numpy, all columns at once."""


def minimize(dfa: DFA, method: str = "auto") -> DFA:
    """Return the minimal DFA of the same language (Hopcroft's algorithm).

    Unreachable states are dropped first; states are renumbered in breadth-first order
    from the initial state, so equal languages give identical tables.

    Args:
        dfa: The automaton.
        method: ``"letters"`` splits blocks one column at a time (pure Python, best for
            few columns), ``"numpy"`` splits by every column at once (vectorized, best for
            wide alphabets); ``"auto"`` picks ``numpy`` from ``WIDE`` columns on.
    """
    if method not in ("auto", "letters", "numpy"):
        raise ValueError(f"method must be auto, letters or numpy, got {method!r}")
    table = dfa._table
    reach = [dfa.initial]
    index = {dfa.initial: 0}
    for s in reach:
        for t in table[s]:
            if t not in index:
                index[t] = len(reach)
                reach.append(t)
    delta = [[index[t] for t in table[s]] for s in reach]
    accepting = {index[s] for s in dfa.accepting if s in index}
    wide = method == "numpy" or (method == "auto" and dfa.n_columns >= WIDE)
    block_of = (_refine_all_columns if wide else _refine_by_letter)(delta, accepting)
    return _quotient(dfa, delta, accepting, block_of)


def _initial_blocks(n: int, accepting: set[int]) -> list[set[int]]:
    return [b for b in (set(accepting), set(range(n)) - accepting) if b]


def _refine_by_letter(delta: list[list[int]], accepting: set[int]) -> list[int]:
    """Hopcroft's refinement, one (splitter, column) pair at a time; returns block ids."""
    n, width = len(delta), len(delta[0])
    inverse = [[[] for _ in range(n)] for _ in range(width)]
    for p, row in enumerate(delta):
        for c, q in enumerate(row):
            inverse[c][q].append(p)
    blocks = _initial_blocks(n, accepting)
    block_of = [0] * n
    for b, members in enumerate(blocks):
        for s in members:
            block_of[s] = b
    work = {min(range(len(blocks)), key=lambda b: len(blocks[b]))} if len(blocks) == 2 else set()
    while work:
        splitter = list(blocks[work.pop()])
        for c in range(width):
            inv_c = inverse[c]
            hit: dict[int, set[int]] = {}
            for q in splitter:
                for p in inv_c[q]:
                    b = block_of[p]
                    if b in hit:
                        hit[b].add(p)
                    else:
                        hit[b] = {p}
            for b, inside in hit.items():
                rest = blocks[b]
                if len(inside) == len(rest):
                    continue
                rest -= inside
                new = len(blocks)
                blocks.append(inside)
                for s in inside:
                    block_of[s] = new
                work.add(new if b in work or len(inside) <= len(rest) else b)
    return block_of


def _refine_all_columns(delta: list[list[int]], accepting: set[int]) -> list[int]:
    """Hopcroft's refinement splitting each block by all columns at once (numpy).

    A block is cut into the groups of states with equal rows of "column c leads into
    the splitter"; every piece but the largest joins the worklist (all of them if the
    block was waiting), the multi-way form of Hopcroft's "smaller half" rule.
    """
    import numpy as np

    table = np.asarray(delta, dtype=np.int64)
    n = table.shape[0]
    blocks = [np.fromiter(sorted(b), dtype=np.int64) for b in _initial_blocks(n, accepting)]
    block_of = np.zeros(n, dtype=np.int64)
    for b, members in enumerate(blocks):
        block_of[members] = b
    # preds[q]: the states with some transition into q (sorted, distinct)
    flat = table.ravel()
    order = np.argsort(flat, kind="stable")
    sources = order // table.shape[1]
    bounds = np.searchsorted(flat[order], np.arange(n + 1))
    preds = [np.unique(sources[bounds[q]:bounds[q + 1]]) for q in range(n)]
    work = {min(range(len(blocks)), key=lambda b: len(blocks[b]))} if len(blocks) == 2 else set()
    while work:
        splitter = blocks[work.pop()]
        rows = np.unique(np.concatenate([preds[q] for q in splitter]))
        if rows.size == 0:
            continue
        inside = np.zeros(n, dtype=bool)
        inside[splitter] = True
        hits = inside[table[rows]]  # hits[i, c]: column c leads rows[i] into the splitter
        keys = np.concatenate([block_of[rows, None].view(np.uint8).reshape(rows.size, -1),
                               np.packbits(hits, axis=1)], axis=1)
        labels = np.unique(keys, axis=0, return_inverse=True)[1].ravel()
        order = np.argsort(labels, kind="stable")
        cuts = np.flatnonzero(np.diff(labels[order])) + 1
        by_block: dict[int, list] = {}
        for group in np.split(rows[order], cuts):
            by_block.setdefault(int(block_of[group[0]]), []).append(group)
        for b, groups in by_block.items():
            covered = sum(len(g) for g in groups)
            if covered < len(blocks[b]):
                groups.append(np.setdiff1d(blocks[b], np.concatenate(groups)))
            if len(groups) == 1:
                continue
            groups.sort(key=len, reverse=True)  # the largest piece keeps the block's id
            blocks[b] = groups[0]
            for piece in groups[1:]:
                block_of[piece] = len(blocks)
                work.add(len(blocks))
                blocks.append(piece)
    return block_of.tolist()


def _quotient(dfa: DFA, delta: list[list[int]], accepting: set[int],
              block_of: list[int]) -> DFA:
    """Build the quotient DFA, numbering blocks in breadth-first order from state 0."""
    order = {block_of[0]: 0}
    queue = deque([0])
    rep = [0]
    while queue:
        s = queue.popleft()
        for t in delta[s]:
            if block_of[t] not in order:
                order[block_of[t]] = len(order)
                rep.append(t)
                queue.append(t)
    table = [[order[block_of[t]] for t in delta[s]] for s in rep]
    acc = {order[block_of[s]] for s in accepting}
    return DFA(dfa.letters, table, 0, acc, letter_column=dfa._column, atoms=dfa.atoms,
               _checked=True)


def difference(a: DFA, b: DFA) -> tuple[Letter, ...] | None:
    """Return a shortest non-empty trace accepted by exactly one of ``a``, ``b``, or ``None``.

    Raises:
        ValueError: If the two automata have different alphabets.
    """
    if set(a.letters) != set(b.letters):
        raise ValueError("the two DFAs must have the same alphabet")
    moves: dict[tuple[int, int], Letter] = {}
    for letter in a.letters:
        moves.setdefault((a._index[letter], b._index[letter]), letter)
    start = (a.initial, b.initial)
    parent: dict[tuple[int, int], tuple[tuple[int, int], Letter] | None] = {}
    queue: deque[tuple[int, int]] = deque()
    for (ca, cb), letter in moves.items():
        nxt = (a._table[a.initial][ca], b._table[b.initial][cb])
        if nxt not in parent:
            parent[nxt] = (start, letter)
            queue.append(nxt)
    while queue:
        pair = queue.popleft()
        if (pair[0] in a.accepting) != (pair[1] in b.accepting):
            return _trace_to(pair, parent, start)
        for (ca, cb), letter in moves.items():
            nxt = (a._table[pair[0]][ca], b._table[pair[1]][cb])
            if nxt not in parent:
                parent[nxt] = (pair, letter)
                queue.append(nxt)
    return None


def _trace_to(pair, parent, start) -> tuple[Letter, ...]:
    """Follow breadth-first parent links from ``pair`` back to a first hop out of ``start``."""
    out: list[Letter] = []
    while True:
        prev, letter = parent[pair]
        out.append(letter)
        if prev == start:
            return tuple(reversed(out))
        pair = prev
