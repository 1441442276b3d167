"""LTL-constrained decoding: a logits processor that only admits spec-respecting plan tokens.

Usage: ``model.generate(ids, logits_processor=[LTLLogitsProcessor(graph, trie, len(ids[0]),
eos_token_id)])``

For each row the processor reads the plan tokens after ``prompt_length`` and walks them through
the :class:`~planners.plan_text.StepTrie`; each completed step moves the domain state and the
DFA state (a :class:`~planners.check.ProductGraph` node). A token is allowed iff it continues the
current unit towards at least one step that is executable in the current domain state and leads
to a product state from which acceptance is still reachable within the budgets, if any: the
remaining steps (``max_steps``) and the remaining tokens (``max_tokens``, e.g. what is left of
the model's context). The token budget counts the tokens of the steps actually taken: a step is
allowed only if its own tokens, plus the fewest tokens of a satisfying completion after it (a
shortest-path distance over the product graph with each step weighted by its token count, within
the steps left), plus EOS fit what remains. EOS is allowed only between steps in an accepting
DFA state. The answer depends only on the ``input_ids`` given (beam search reorders rows,
parallel decoders pass guesses), and both the prefix walk and the allowed-token sets are cached
(keyed by the token prefix and by ``(domain state, DFA state, trie node, budget)``; the budget
enters the key only where it binds), and each distinct allowed set has a cached additive
``0/-inf`` mask, so the per-token cost is a ``tolist``, dict lookups and one tensor addition.

Other processors that also ban tokens (``no_repeat_ngram_size``, ``bad_words_ids``, a user's)
can leave none of the allowed tokens standing. The processor checks the scores it receives and
raises :class:`ConstraintConflictError` instead of letting greedy search pick a banned token or
sampling draw from an all ``-inf`` row.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch
from transformers import LogitsProcessor

from planners.check import ProductGraph, token_distances
from planners.plan_text import StepTrie


class ConstraintConflictError(ValueError, RuntimeError):
    """Another logits processor or decode option banned every token the LTL constraint allows.

    Raised instead of letting greedy search emit a banned token (or EOS mid-step) or sampling
    draw from an all ``-inf`` row, so a truncated or unsafe plan is never returned.
    """


class _Walk(NamedTuple):
    """Where a token prefix leaves the decoder.

    ``node`` is the product node, ``trie`` the trie node inside the current unit, ``steps`` the
    completed steps, ``start`` the tokens before the current unit, ``status`` one of ``"ok"``,
    ``"done"`` (EOS seen) or ``"off"`` (left the plan language).
    """

    node: tuple | None
    trie: int
    steps: int
    status: str
    start: int = 0


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
        max_tokens: Optional token budget of the whole plan, EOS included (e.g. the model's
            context minus the prompt). A step is allowed only while a satisfying completion
            (within ``max_steps``, if given) still fits, counting the tokens of the steps
            actually taken, so a plan is produced whenever one fits.

    Attributes:
        calls: Number of rows processed.
        seconds: Wall time spent inside ``__call__``.
        masks_built: Number of distinct masks computed.
        dead_ends: Rows for which nothing but EOS could be allowed.
    """

    def __init__(self, graph: ProductGraph, trie: StepTrie, prompt_length: int,
                 eos_token_id: int, max_steps: int | None = None,
                 max_tokens: int | None = None) -> None:
        if prompt_length < 0:
            raise ValueError(f"prompt_length must be >= 0, got {prompt_length}")
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be >= 0 or None, got {max_steps}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (EOS) or None, got {max_tokens}")
        if eos_token_id is None:
            raise ValueError("eos_token_id must be a token id (plans end with EOS)")
        self.graph, self.trie = graph, trie
        self.prompt_length, self.eos_token_id, self.max_steps = prompt_length, eos_token_id, \
            max_steps
        self.max_tokens = max_tokens
        self.cost = {step: len(ids) for step, ids in trie.unit_tokens.items()}
        self._layers: list[dict[tuple, int]] | None = None
        self._worst_next: dict[tuple, int] = {}
        self._worst_tokens: dict[tuple, float] = {}
        self._good: dict[tuple, frozenset[str]] = {}  # (product node, budget) -> good steps
        self._walks: dict[tuple[int, ...], _Walk] = {(): _Walk(graph.root, 0, 0, "ok")}
        self._masks: dict[tuple, tuple[int, ...]] = {}  # mask key -> allowed token ids
        self._additive: dict[tuple, torch.Tensor] = {}  # allowed set -> additive mask
        self._nexts: dict[tuple, dict[str, tuple]] = {}  # product node -> {step: next node}
        self.calls, self.seconds, self.masks_built, self.dead_ends = 0, 0.0, 0, 0

    @property
    def layers(self) -> list[dict[tuple, int]]:
        """:func:`token_distances` of the graph with this trie's step costs.

        Computed once per graph, step costs and step budget (kept on the graph, so processors
        of later plans from the same product graph reuse it).
        """
        if self._layers is None:
            memo = self.graph.__dict__.setdefault("_token_layers", {})
            key = (tuple(sorted(self.cost.items())), self.max_steps)
            if key not in memo:
                memo[key] = token_distances(self.graph, self.cost, self.max_steps)
            self._layers = memo[key]
        return self._layers

    def fewest_tokens(self, node: tuple, steps: int | None = None) -> float:
        """Fewest step tokens from ``node`` to acceptance within ``steps`` steps (inf: none)."""
        layers = self.layers
        k = len(layers) - 1 if steps is None else min(steps, len(layers) - 1)
        return layers[k].get(node, math.inf) if k >= 0 else math.inf

    def _step_next(self, node: tuple) -> dict[str, tuple]:
        """``{step: next product node}`` of the executable steps at ``node`` (cached)."""
        out = self._nexts.get(node)
        if out is None:
            out = self._nexts[node] = dict(self.graph.succ[node])
        return out

    def walk(self, tokens: tuple[int, ...]) -> _Walk:
        """Where the plan tokens ``tokens`` lead (cached per prefix; iterative)."""
        hit = self._walks.get(tokens)
        if hit is not None:
            return hit
        k = len(tokens) - 1
        while tokens[:k] not in self._walks:
            k -= 1
        prev = self._walks[tokens[:k]]
        for i in range(k, len(tokens)):
            prev = self._walks[tokens[: i + 1]] = self._advance(prev, tokens[i], i + 1)
        return prev

    def _advance(self, prev: _Walk, tok: int, length: int) -> _Walk:
        """The walk after ``prev`` reads ``tok`` (``length`` plan tokens read in all)."""
        if prev.status != "ok":
            return prev
        if tok == self.eos_token_id and prev.trie == 0:
            return _Walk(prev.node, 0, prev.steps, "done", prev.start)
        child = self.trie.children[prev.trie].get(tok)
        if child is None:
            return _Walk(None, 0, prev.steps, "off", prev.start)
        step = self.trie.step_at[child]
        if step is None:
            return _Walk(prev.node, child, prev.steps, "ok", prev.start)
        nxt = self._step_next(prev.node).get(step)
        return (_Walk(nxt, 0, prev.steps + 1, "ok", length) if nxt is not None
                else _Walk(None, 0, prev.steps + 1, "off", prev.start))

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

    def budget(self, w: _Walk) -> tuple[int | None, int | None]:
        """``(steps left, tokens left)`` after walk ``w``, each None where it cannot bind.

        Tokens left count from the start of the current unit. Where the token budget binds, the
        steps left are kept too (clamped where the token distances stop changing), since the
        fewest tokens to acceptance depend on how many steps remain.
        """
        left = self.steps_left(w)
        if self.max_tokens is None or w.status != "ok":
            return left, None
        tokens = self.max_tokens - w.start
        steps = None if self.max_steps is None else self.max_steps - w.steps
        if steps is not None:
            steps = min(steps, len(self.layers))
        key = (w.node, steps)
        worst = self._worst_tokens.get(key)
        if worst is None:
            worst = self._worst_tokens[key] = max(
                (self.cost[s] + self.fewest_tokens(n, None if steps is None else steps - 1) + 1
                 for s, n in self.graph.succ[w.node] if n in self.graph.dist), default=0)
        if tokens >= worst:
            return left, None
        return steps, tokens

    def good_steps(self, node: tuple, left: int | None, tokens: int | None = None
                   ) -> frozenset[str]:
        """Steps executable at product ``node`` that keep acceptance reachable (cached).

        With a step budget ``left``, acceptance must be reachable within ``left - 1`` further
        steps; with a token budget ``tokens`` (counted from the step's first token), the step's
        tokens, the fewest tokens of a satisfying completion after it and EOS must fit.
        """
        key = (node, left, tokens)
        good = self._good.get(key)
        if good is None:
            dist, cost = self.graph.dist, self.cost
            if tokens is not None:
                rest = None if left is None else left - 1
                good = frozenset(step for step, nxt in self.graph.succ[node]
                                 if nxt in dist and cost[step] + 1
                                 + self.fewest_tokens(nxt, rest) <= tokens)
            else:
                good = frozenset(step for step, nxt in self.graph.succ[node]
                                 if nxt in dist and (left is None or dist[nxt] <= left - 1))
            self._good[key] = good
        return good

    def allowed_tokens(self, w: _Walk, left: int | None = None, tokens: int | None = None
                       ) -> list[int]:
        """Token ids allowed after walk ``w`` within ``left`` steps and ``tokens`` tokens.

        None means that budget is unbounded.
        """
        if w.status != "ok":
            return [self.eos_token_id]
        good = self.good_steps(w.node, left, tokens)
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
        left, tokens = self.budget(w)
        key = (w.node, w.trie, left, tokens, w.status)
        ids = self._masks.get(key)
        if ids is None:
            allowed = self.allowed_tokens(w, left, tokens)
            if not allowed:
                self.dead_ends += 1
                allowed = [self.eos_token_id]
            ids = self._masks[key] = tuple(sorted(set(allowed)))
            self.masks_built += 1
        return ids

    def limited_by(self, tokens: tuple[int, ...] | list[int]) -> str | None:
        """Which budget excluded a step the spec allowed along the plan ``tokens``, if any.

        Returns:
            ``"context"`` where the token budget removed a step somewhere along the plan,
            else ``"max_steps"`` where the step budget did, else None.
        """
        tokens = tuple(tokens)
        out = None
        for k in range(len(tokens) + 1):
            w = self.walk(tokens[:k])
            if w.status != "ok" or w.trie != 0:
                continue
            left, budget = self.budget(w)
            if budget is not None and self.good_steps(w.node, left, budget) != \
                    self.good_steps(w.node, left):
                return "context"
            if left is not None and self.good_steps(w.node, self.steps_left(w)) != \
                    self.good_steps(w.node, None):
                out = "max_steps"
        return out

    def check_plan_tokens(self, tokens: list[int]) -> None:
        """Raise :class:`ConstraintConflictError` unless ``tokens`` are a complete allowed plan.

        ``tokens`` are the generated plan tokens, EOS included: every token must have been
        allowed, and the plan must end with EOS in an accepting state.
        """
        for k, tok in enumerate(tokens):
            w = self.walk(tuple(tokens[:k]))
            if w.status == "done":
                break
            if tok not in self.allowed_ids(w):
                raise ConstraintConflictError(
                    f"token {tok} at plan position {k} is not one the LTL constraint allows "
                    f"(allowed: {list(self.allowed_ids(w))[:20]}); another logits processor, "
                    "warper or decode option overrode LTLLogitsProcessor. Remove the option that "
                    "bans or forces tokens (e.g. no_repeat_ngram_size, bad_words_ids, "
                    "suppress_tokens) or run LTLLogitsProcessor last.")
        end = self.walk(tuple(tokens))
        if end.status != "done":
            raise ConstraintConflictError(
                f"decoding stopped after {len(tokens)} plan tokens before the plan was complete "
                "(no EOS in an accepting state); the token budget given to the decoder is "
                "smaller than the constraint's")

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

        Raises:
            ConstraintConflictError: If the incoming ``scores`` of a row are already ``-inf``
                at every token the constraint allows (another processor banned them all).
        """
        t0 = time.perf_counter()
        masks, rows = [], []
        for row in input_ids[:, self.prompt_length:].tolist():
            w = self.walk(tuple(row))
            if w.status == "done":
                masks.append(self.additive_mask(None, scores))
            else:
                masks.append(self.additive_mask(self.allowed_ids(w), scores))
                rows.append((len(masks) - 1, w))
        out = scores + (masks[0] if len(masks) == 1 else torch.stack(masks))
        if rows:
            dead = torch.isneginf(out).all(dim=-1).reshape(-1).tolist()
            for i, w in rows:
                if dead[i]:
                    self._conflict(w)
        self.calls += input_ids.shape[0]
        self.seconds += time.perf_counter() - t0
        return out

    def _conflict(self, w: _Walk) -> None:
        """Raise the error for a row where other processors banned every allowed token."""
        left, tokens = self.budget(w)
        steps = sorted(s for s in self.good_steps(w.node, left, tokens)
                       if s in self.trie.steps_under[w.trie])
        raise ConstraintConflictError(
            "another logits processor (e.g. no_repeat_ngram_size, repetition rules, bad_words_ids "
            "or a user processor) banned every token the LTL constraint allows after "
            f"{w.steps} plan steps (the next step must be one of {steps[:8]}"
            f"{' or EOS' if w.trie == 0 and w.node[1] in self.graph.dfa.accepting else ''}); "
            "drop that option, since a constrained plan may need to repeat tokens")

    @property
    def us_per_row(self) -> float:
        """Mean wall microseconds per processed row (per generated token at batch 1)."""
        return 1e6 * self.seconds / max(self.calls, 1)
