"""LTL-constrained decoding: a logits processor that only admits spec-respecting plan tokens.

Usage: ``model.generate(ids, logits_processor=[LTLLogitsProcessor(graph, trie, len(ids[0]),
eos_token_id)])``

For each row the processor reads the plan tokens after ``prompt_length`` and walks them through
the :class:`~planners.plan_text.StepTrie`; each completed step moves the domain state and the
DFA state (a :class:`~planners.check.ProductGraph` node). A token is allowed iff it continues the
current unit towards at least one step that is executable in the current domain state and leads
to a product state from which acceptance is still reachable (within the remaining step budget,
if any); EOS is allowed only between steps in an accepting DFA state. The answer depends only on
the ``input_ids`` given (beam search reorders rows, parallel decoders pass guesses), and both
the prefix walk and the allowed-token sets are cached (keyed by the token prefix and by
``(domain state, DFA state, trie node, steps left)``; the budget enters the key only where it
binds), and each distinct allowed set has a cached additive ``0/-inf`` mask, so the per-token
cost is a ``tolist``, dict lookups and one tensor addition.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch
from transformers import LogitsProcessor

from planners.check import ProductGraph
from planners.plan_text import StepTrie


class _Walk(NamedTuple):
    """Where a token prefix leaves the decoder: product node, trie node, steps, status."""

    node: tuple | None
    trie: int
    steps: int
    status: str  # "ok", "done" (EOS seen) or "off" (left the plan language)


class LTLLogitsProcessor(LogitsProcessor):
    """Mask logits so generated plans are valid and satisfy an LTLf spec by construction.

    Args:
        graph: Product of the domain and the spec's DFA from the plan's initial state.
        trie: Token trie of the domain's step units, built with the LM's tokenizer.
        prompt_length: Index in the processor's ``input_ids`` where plan tokens begin.
        eos_token_id: The token that ends a plan.
        max_steps: Optional step budget; steps are only allowed while an accepting state stays
            reachable within it, so a satisfying plan of at most ``max_steps`` steps is produced
            whenever one exists.

    Attributes:
        calls: Number of rows processed.
        seconds: Wall time spent inside ``__call__``.
        masks_built: Number of distinct masks computed.
        dead_ends: Rows for which nothing but EOS could be allowed.
    """

    def __init__(self, graph: ProductGraph, trie: StepTrie, prompt_length: int,
                 eos_token_id: int, max_steps: int | None = None) -> None:
        if prompt_length < 0:
            raise ValueError(f"prompt_length must be >= 0, got {prompt_length}")
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be >= 0 or None, got {max_steps}")
        if eos_token_id is None:
            raise ValueError("eos_token_id must be a token id (plans end with EOS)")
        self.graph, self.trie = graph, trie
        self.prompt_length, self.eos_token_id, self.max_steps = prompt_length, eos_token_id, \
            max_steps
        self._worst_next: dict[tuple, int] = {}
        self._good: dict[tuple, frozenset[str]] = {}  # (product node, budget) -> good steps
        self._walks: dict[tuple[int, ...], _Walk] = {(): _Walk(graph.root, 0, 0, "ok")}
        self._masks: dict[tuple, tuple[int, ...]] = {}  # mask key -> allowed token ids
        self._additive: dict[tuple, torch.Tensor] = {}  # allowed set -> additive mask
        self._nexts: dict[tuple, dict[str, tuple]] = {}  # product node -> {step: next node}
        self.calls, self.seconds, self.masks_built, self.dead_ends = 0, 0.0, 0, 0

    def _step_next(self, node: tuple) -> dict[str, tuple]:
        """``{step: next product node}`` of the executable steps at ``node`` (cached)."""
        out = self._nexts.get(node)
        if out is None:
            out = self._nexts[node] = dict(self.graph.succ[node])
        return out

    def walk(self, tokens: tuple[int, ...]) -> _Walk:
        """Where the plan tokens ``tokens`` lead (cached per prefix)."""
        hit = self._walks.get(tokens)
        if hit is not None:
            return hit
        prev = self.walk(tokens[:-1])
        tok = tokens[-1]
        if prev.status != "ok":
            out = prev
        elif tok == self.eos_token_id and prev.trie == 0:
            out = _Walk(prev.node, 0, prev.steps, "done")
        else:
            child = self.trie.children[prev.trie].get(tok)
            if child is None:
                out = _Walk(None, 0, prev.steps, "off")
            elif (step := self.trie.step_at[child]) is None:
                out = _Walk(prev.node, child, prev.steps, "ok")
            else:
                nxt = self._step_next(prev.node).get(step)
                out = (_Walk(nxt, 0, prev.steps + 1, "ok") if nxt is not None
                       else _Walk(None, 0, prev.steps + 1, "off"))
        self._walks[tokens] = out
        return out

    def steps_left(self, w: _Walk) -> int | None:
        """The step budget left after walk ``w``, or None where the budget cannot bind.

        The budget only matters while some successor needs more steps to acceptance than remain,
        so most mask keys omit it and are shared across positions of a plan.
        """
        if self.max_steps is None or w.status != "ok":
            return None
        left = self.max_steps - w.steps
        worst = self._worst_next.get(w.node)
        if worst is None:
            dists = [self.graph.dist.get(n) for _, n in self.graph.succ[w.node]]
            worst = self._worst_next[w.node] = max((d for d in dists if d is not None),
                                                   default=0)
        return left if left - 1 < worst else None

    def good_steps(self, node: tuple, left: int | None) -> frozenset[str]:
        """Steps executable at product ``node`` that keep acceptance reachable (cached).

        With a budget ``left``, acceptance must be reachable within ``left - 1`` further steps.
        """
        key = (node, left)
        good = self._good.get(key)
        if good is None:
            dist = self.graph.dist
            good = self._good[key] = frozenset(
                step for step, nxt in self.graph.succ[node]
                if nxt in dist and (left is None or dist[nxt] <= left - 1))
        return good

    def allowed_tokens(self, w: _Walk, left: int | None = None) -> list[int]:
        """Token ids allowed after walk ``w`` with ``left`` steps of budget (None: unbounded)."""
        if w.status != "ok":
            return [self.eos_token_id]
        good = self.good_steps(w.node, left)
        under = self.trie.steps_under
        out = [tok for tok, child in self.trie.children[w.trie].items()
               if not good.isdisjoint(under[child])]
        if w.trie == 0 and w.node[1] in self.graph.dfa.accepting:
            out.append(self.eos_token_id)
        return out

    def allowed_ids(self, w: _Walk) -> tuple[int, ...]:
        """Sorted allowed token ids after walk ``w`` (cached per mask key).

        A row with nothing allowed (only possible past the budget or off-language) gets EOS, so
        decoding ends there instead of sampling from an all ``-inf`` row.
        """
        left = self.steps_left(w)
        key = (w.node, w.trie, left, w.status)
        ids = self._masks.get(key)
        if ids is None:
            allowed = self.allowed_tokens(w, left)
            if not allowed:
                self.dead_ends += 1
                allowed = [self.eos_token_id]
            ids = self._masks[key] = tuple(sorted(set(allowed)))
            self.masks_built += 1
        return ids

    def additive_mask(self, ids: tuple[int, ...] | None, like: torch.Tensor) -> torch.Tensor:
        """A ``[V]`` tensor, 0 at ``ids`` and ``-inf`` elsewhere (all 0 for None), cached."""
        key = (ids, like.shape[-1], like.dtype, like.device)
        mask = self._additive.get(key)
        if mask is None:
            mask = torch.full(like.shape[-1:], 0.0 if ids is None else float("-inf"),
                              dtype=like.dtype, device=like.device)
            if ids is not None:
                mask[torch.tensor(ids, dtype=torch.long, device=like.device)] = 0.0
            self._additive[key] = mask
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        """Return ``scores`` with every banned token set to ``-inf`` (a new tensor).

        The cached additive mask of the row's allowed set is added to its scores: one tensor
        operation per call. Rows whose plan already ended with EOS (they only receive padding)
        are left unchanged.
        """
        t0 = time.perf_counter()
        masks = []
        for row in input_ids[:, self.prompt_length:].tolist():
            w = self.walk(tuple(row))
            if w.status == "done":
                masks.append(self.additive_mask(None, scores))
            else:
                masks.append(self.additive_mask(self.allowed_ids(w), scores))
        out = scores + (masks[0] if len(masks) == 1 else torch.stack(masks))
        self.calls += input_ids.shape[0]
        self.seconds += time.perf_counter() - t0
        return out

    @property
    def us_per_row(self) -> float:
        """Mean wall microseconds per processed row (per generated token at batch 1)."""
        return 1e6 * self.seconds / max(self.calls, 1)
