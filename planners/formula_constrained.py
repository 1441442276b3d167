"""Grammar- and vocabulary-constrained decoding of LTLf formulas, for any HF tokenizer.

Usage::

    from planners.formula_constrained import FormulaConstraint, FormulaLogitsProcessor
    constraint = FormulaConstraint(TokenSurfaces.build(tokenizer), {"lab", "cafe"},
                                   tokenizer.eos_token_id)
    proc = FormulaLogitsProcessor(constraint, prompt_length=ids.shape[1], max_tokens=48)
    model.generate(ids, logits_processor=[proc], max_new_tokens=48, ...)

Every text decoded under the processor is a prefix of a syntactically valid LTLf formula whose
atoms are the given ones (plus ``true``/``false``), and EOS is allowed only where the formula is
complete and its parentheses balanced. Tokenizers differ in how tokens join (byte-level BPE
carries the space in the token, WordPiece joins ``##`` pieces and spaces the rest, Unigram's
``▁`` marks a space), so the constraint reasons over characters: :class:`TokenSurfaces` records
the text each token adds when decoded after a fixed anchor (its *surface*) and a character trie
of those surfaces; for each automaton state (:class:`~planners.ltl_grammar.FormulaState`) one
walk of that trie alongside :class:`~planners.ltl_grammar.FormulaAutomaton` finds every token
that keeps the text a formula prefix, and where it leads. With ``max_tokens`` (the decoder's
``max_new_tokens``) a token is allowed only if, after it, the shortest completion written with
single-character tokens (a leading space allowed where a lexeme starts) plus EOS still fits, so
every sample ends with a parsable formula. Allowed sets and their additive ``0/-inf`` masks are
cached per state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import torch
from transformers import LogitsProcessor

from planners.constrained import ConstraintConflictError
from planners.ltl_grammar import START, FormulaAutomaton, FormulaState

_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzXFGURW0123456789_ ()!&|<->")
_DONE = "done"  # walk sentinel: EOS read


def continuation_text(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text ``new_ids`` add after ``prompt_ids`` (special tokens skipped).

    Decoded in context, as :class:`TokenSurfaces` reads tokens: alone, a WordPiece
    continuation such as ``##false`` would keep its ``##``.
    """
    head = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    whole = tokenizer.decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
    if whole.startswith(head):
        return whole[len(head):]
    return tokenizer.decode(new_ids, skip_special_tokens=True)


class TokenSurfaces:
    """What each token of a tokenizer adds to decoded text, and a character trie over it.

    Attributes:
        surfaces: ``surfaces[t]``: the text token ``t`` adds after the anchor, or None for
            special tokens and tokens with characters no formula uses.
        children: The trie: ``children[node]`` maps a character to a child node (0 is the root).
        tokens_at: ``tokens_at[node]``: the tokens whose surface ends at ``node``.
    """

    def __init__(self, surfaces: list[str | None]) -> None:
        self.surfaces = surfaces
        self.children: list[dict[str, int]] = [{}]
        self.tokens_at: list[list[int]] = [[]]
        for tok, text in enumerate(surfaces):
            if not text:
                continue
            node = 0
            for ch in text:
                nxt = self.children[node].get(ch)
                if nxt is None:
                    nxt = self.children[node][ch] = len(self.children)
                    self.children.append({})
                    self.tokens_at.append([])
                node = nxt
            self.tokens_at[node].append(tok)

    @classmethod
    def build(cls, tokenizer, anchor: str = "ltl:") -> TokenSurfaces:
        """Surfaces of every token of an HF tokenizer, decoded after ``anchor``'s tokens."""
        ids = tokenizer.encode(anchor, add_special_tokens=False)
        head = tokenizer.decode(ids)
        special = set(tokenizer.all_special_ids)
        texts = tokenizer.batch_decode([ids + [t] for t in range(len(tokenizer))])
        surfaces: list[str | None] = []
        for tok, text in enumerate(texts):
            ok = tok not in special and text.startswith(head) and len(text) > len(head)
            surface = text[len(head):] if ok else None
            surfaces.append(surface if surface and set(surface) <= _CHARS else None)
        return cls(surfaces)

    def token_for(self, text: str) -> int | None:
        """A token whose surface is exactly ``text``, if any."""
        node = 0
        for ch in text:
            node = self.children[node].get(ch, -1)
            if node < 0:
                return None
        return self.tokens_at[node][0] if self.tokens_at[node] else None


class FormulaConstraint:
    """Allowed tokens per automaton state over one tokenizer and atom set (cached, shareable).

    Args:
        surfaces: The tokenizer's :class:`TokenSurfaces`.
        atoms: Allowed atom names.
        eos_token_id: The token that ends a formula.
        max_depth: The most parentheses open at once.
    """

    def __init__(self, surfaces: TokenSurfaces, atoms: Iterable[str], eos_token_id: int,
                 max_depth: int = 8) -> None:
        if eos_token_id is None:
            raise ValueError("eos_token_id must be a token id (formulas end with EOS)")
        self.surfaces, self.eos_token_id = surfaces, eos_token_id
        single = [c for c in surfaces.surfaces if c and (len(c) == 1 or c[0] == " " == c[:-1])]
        self.automaton = FormulaAutomaton(atoms, max_depth, inner={c for c in single
                                                                   if len(c) == 1},
                                          first={c[-1] for c in single})
        self._succ: dict[FormulaState, dict[int, FormulaState]] = {}
        self._worst: dict[FormulaState, int] = {}
        self._ids: dict[tuple, tuple[int, ...]] = {}
        self._additive: dict[tuple, torch.Tensor] = {}

    def successors(self, s: FormulaState) -> dict[int, FormulaState]:
        """``{token: next state}`` of every non-EOS token that keeps ``s`` a formula prefix."""
        out = self._succ.get(s)
        if out is None:
            out = {}
            children, tokens_at, step = (self.surfaces.children, self.surfaces.tokens_at,
                                         self.automaton.step)
            stack = [(0, s)]
            while stack:  # walk the vocabulary trie and the automaton together
                node, state = stack.pop()
                for ch, child in children[node].items():
                    nxt = step(state, ch)
                    if nxt is None:
                        continue
                    for tok in tokens_at[child]:
                        out[tok] = nxt
                    if children[child]:
                        stack.append((child, nxt))
            self._succ[s] = out
        return out

    def allowed_ids(self, s: FormulaState, left: int | None) -> tuple[int, ...]:
        """Sorted tokens allowed in state ``s`` with ``left`` tokens (EOS included) to go."""
        succ = self.successors(s)
        finish = self.automaton.finish_length
        if left is not None:
            worst = self._worst.get(s)
            if worst is None:
                worst = self._worst[s] = max((finish(n) for n in succ.values()), default=0)
            if worst <= left - 2:
                left = None  # the budget cannot bind here: share the unbudgeted set
        key = (s, left)
        ids = self._ids.get(key)
        if ids is None:
            out = [t for t, n in succ.items() if left is None or finish(n) <= left - 2]
            if self.automaton.accepts_end(s):
                out.append(self.eos_token_id)
            ids = self._ids[key] = tuple(sorted(out))
        return ids

    def additive_mask(self, ids: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A ``[V]`` tensor, 0 at ``ids`` and ``-inf`` elsewhere (cached)."""
        key = (ids, like.shape[-1], like.dtype, like.device)
        mask = self._additive.get(key)
        if mask is None:
            mask = torch.full(like.shape[-1:], float("-inf"), dtype=like.dtype,
                              device=like.device)
            mask[torch.tensor(ids, dtype=torch.long, device=like.device)] = 0.0
            self._additive[key] = mask
        return mask


class FormulaLogitsProcessor(LogitsProcessor):
    """Mask logits so the decoded text is a formula over the constraint's atoms.

    Args:
        constraint: The tokenizer's and atom set's :class:`FormulaConstraint`.
        prompt_length: Index in ``input_ids`` where formula tokens begin.
        max_tokens: The decoder's token budget (``max_new_tokens``); with it, every row ends
            with EOS after a complete formula within the budget.

    Raises:
        ValueError: If ``max_tokens`` cannot fit the shortest formula the tokenizer's
            single-character tokens can write, and EOS.
    """

    def __init__(self, constraint: FormulaConstraint, prompt_length: int,
                 max_tokens: int | None = None) -> None:
        if prompt_length < 0:
            raise ValueError(f"prompt_length must be >= 0, got {prompt_length}")
        if max_tokens is not None:
            need = constraint.automaton.finish_length(START) + 1
            if need == math.inf:
                raise ValueError("the tokenizer's single-character tokens cannot write any "
                                 "formula over the atoms, so none can be promised")
            if max_tokens < need:
                raise ValueError(f"max_tokens must be >= {need} (shortest formula + EOS), "
                                 f"got {max_tokens}")
        self.constraint, self.prompt_length, self.max_tokens = (constraint, prompt_length,
                                                                max_tokens)
        self._walks: dict[tuple[int, ...], FormulaState | str | None] = {(): START}
        self.calls, self.seconds = 0, 0.0

    def walk(self, tokens: tuple[int, ...]) -> FormulaState | str | None:
        """The state after ``tokens`` (``"done"`` after EOS, None off the language; cached)."""
        k = len(tokens)
        while tokens[:k] not in self._walks:
            k -= 1
        state = self._walks[tokens[:k]]
        c = self.constraint
        for i in range(k, len(tokens)):
            tok = tokens[i]
            if isinstance(state, FormulaState):
                if tok == c.eos_token_id:
                    state = _DONE if c.automaton.accepts_end(state) else None
                else:
                    state = c.successors(state).get(tok)
            self._walks[tokens[: i + 1]] = state
        return state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        """Return ``scores`` with every token that leaves the formula language at ``-inf``.

        Rows that already ended with EOS are left unchanged; a row that left the language
        (another processor forced a token) may only end.

        Raises:
            ConstraintConflictError: If the incoming scores already ban every allowed token.
        """
        t0 = time.perf_counter()
        c = self.constraint
        masks = []
        for row in input_ids[:, self.prompt_length:].tolist():
            state = self.walk(tuple(row))
            if state == _DONE:
                masks.append(torch.zeros_like(scores[0]))
                continue
            left = None if self.max_tokens is None else self.max_tokens - len(row)
            ids = (c.allowed_ids(state, left) if isinstance(state, FormulaState)
                   else (c.eos_token_id,))
            masks.append(c.additive_mask(ids, scores))
        out = scores + torch.stack(masks)
        if torch.isneginf(out).all(dim=-1).any():
            raise ConstraintConflictError(
                "another logits processor banned every token the formula grammar allows; drop "
                "that option (e.g. no_repeat_ngram_size, bad_words_ids)")
        self.calls += input_ids.shape[0]
        self.seconds += time.perf_counter() - t0
        return out
