"""Grounded decoding: plans likely under the LM and under weighted grounding functions.

Usage::

    from planners import Planner
    from planners.grounded import grounded_plan
    from envs.symbolic import InvalidStepError
from planners.grounding import Affordance, Cost, GoalProgress, Safety
    planner = Planner.from_default("drone_nav")
    plan = grounded_plan(planner, "go to the cafe, never the reception",
                         ltl="F(cafe) & G(!reception)", state="lobby",
                         groundings=[(1, Affordance()), (1, Safety(hard=True)), (0.5, Cost()),
                                     (1, GoalProgress())])

A token's score is ``log p_LM(token | prefix) + sum_i w_i log G_i(ctx, step)``, where ``step``
is the best domain step the token can still complete (the step trie says which) and ``ctx``
the state reached by executing the steps so far (:class:`planners.grounding.PlanContext`).
Greedy decoding takes the best of the allowed tokens (optionally only the LM's ``top_k`` most
likely of them); ``beam_width > 1`` runs beam search over whole steps, scoring each step by
its tokens' LM log-probability plus its grounding. A completed step is executed and the state
updated before the next one. Works with any HF causal LM and tokenizer a :class:`Planner`
accepts; tokens that complete no domain step are never written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import replace

from envs.symbolic import InvalidStepError
from planners.grounded_beam import advance, beam_search, finish_plan
from planners.grounding import PlanContext, Weighted, check_groundings, step_scores
from planners.plan_text import encode, format_prompt
from planners.planner import Plan, Planner


def _start(planner: Planner, instruction: str, ltl, state: Hashable | None
           ) -> tuple[list[int], PlanContext]:
    """Prompt ids and the initial context (validates the inputs)."""
    from planners.check import UnsatisfiableSpecError
    from planners.ltl import LTLf

    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
    domain = planner.domain
    if state is None:
        state = getattr(domain, "start", None)
        state = domain.initial() if state is None else state
    state = domain.validate_state(state)
    graph = spec = node = None
    if ltl is not None:
        spec = ltl if isinstance(ltl, LTLf) else LTLf(str(ltl))
        graph = planner.graph(spec, state)
        node = graph.root
        if node not in graph.dist:
            raise UnsatisfiableSpecError(f"no plan satisfies {str(ltl)!r} from {state!r}")
    prompt = format_prompt(domain.describe(state), instruction)
    ids = encode(planner.tokenizer, prompt)
    tok = planner.tokenizer
    if tok.bos_token_id is not None and tok.bos_token_id != tok.eos_token_id:
        ids = [tok.bos_token_id, *ids]
    planner.context_room(len(ids), len(prompt))  # raises PromptTooLongError
    ctx = PlanContext(domain, state, (), (state,), planner.max_steps, spec, graph, node)
    return ids, ctx


def grounded_plan(planner: Planner, instruction: str, ltl=None, state: Hashable | None = None,
                  *, groundings: Sequence[Weighted] = (), top_k: int | None = None,
                  beam_width: int = 1) -> Plan:
    """Write a plan with grounded decoding (see the module docstring).

    Args:
        planner: The LM, tokenizer, domain and step budget (``max_steps``).
        instruction: The task in words.
        ltl: The spec (text or ``LTLf``) the grounding functions may use, or None. It is
            enforced only through the grounding functions (``Safety(hard=True)`` for a mask).
        state: The initial domain state (default: the domain's start).
        groundings: ``[(weight, function), ...]``; empty means LM only over domain steps.
        top_k: Greedy: consider only the LM's ``top_k`` most likely allowed tokens. Beam:
            expand each beam by at most ``top_k`` steps. None: all.
        beam_width: 1 for greedy token decoding, more for beam search over steps.

    Returns:
        The :class:`Plan`; ``stats`` has ``stop`` (``"eos"``, ``"max_steps"``, ``"context"`` or
        ``"dead_end"`` when every continuation scored ``-inf``) and ``forward_passes``.

    Raises:
        TypeError, ValueError: For bad arguments (named in the message).
        UnsatisfiableSpecError: If ``ltl`` cannot be satisfied from ``state``.
    """
    groundings = check_groundings(groundings)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an int >= 1, got {beam_width!r}")
    ids, ctx = _start(planner, instruction, ltl, state)
    if beam_width == 1:
        return _greedy(planner, ids, ctx, groundings, top_k)
    return beam_search(planner, ids, ctx, groundings, top_k, beam_width)


def _greedy(planner: Planner, ids: list[int], ctx: PlanContext, groundings: list[Weighted],
            top_k: int | None) -> Plan:
    """Token-level greedy grounded decoding with the prompt's KV cache extended per token."""
    import torch

    from decoding.adapter import forward

    trie, eos = planner.trie, planner.tokenizer.eos_token_id
    limit = planner.context_limit()
    t0 = time.perf_counter()
    with torch.no_grad():
        logits, cache = forward(planner.model, torch.tensor([ids]), None)
    passes, n_new, node, stop = 1, 0, 0, "eos"
    scores, end = step_scores(ctx, trie.unit_tokens, groundings)
    while True:
        logp = torch.log_softmax(logits[0, -1].double(), -1)
        # 1. candidates: trie children (+ EOS between steps); at the step budget only EOS
        cands = [] if ctx.steps_left <= 0 and node == 0 else list(trie.children[node].items())
        if limit is not None and len(ids) + n_new + 1 >= limit:
            cands = []  # no room for another token but EOS
        if top_k is not None and len(cands) > top_k:
            cands = sorted(cands, key=lambda tc: -float(logp[tc[0]]))[:top_k]
        # 2. score = log p_LM + the best grounding score of a step the token can complete
        best_tok, best, child_of = None, -math.inf, None
        for tok, child in cands:
            g = max(scores[s] for s in trie.steps_under[child])
            total = float(logp[tok]) + g
            if total > best:
                best_tok, best, child_of = tok, total, child
        if node == 0 and float(logp[eos]) + end > best:
            best_tok, best = eos, float(logp[eos]) + end
        if best == -math.inf:
            stop = "dead_end" if cands else ("max_steps" if ctx.steps_left <= 0 else "context")
            break
        if best_tok == eos:
            n_new += 1
            break
        # 3. extend: one model pass; a completed step is executed and re-scored
        with torch.no_grad():
            logits, cache = forward(planner.model, torch.tensor([[best_tok]]), cache)
        passes, n_new = passes + 1, n_new + 1
        step = trie.step_at[child_of]
        if step is None:
            node = child_of
        else:
            node = 0
            try:
                ctx = advance(ctx, step)
            except InvalidStepError:  # a soft affordance let a non-executable step through
                ctx = replace(ctx, steps=(*ctx.steps, step))
                stop = "invalid_step"
                break
            scores, end = step_scores(ctx, trie.unit_tokens, groundings)
    return finish_plan(planner, ctx, n_new, t0, stop,
                   {"forward_passes": passes, "decoder": "grounded-greedy"})
