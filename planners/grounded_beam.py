"""Beam search over whole steps for grounded decoding, and the shared step helpers.

Usage: ``grounded_plan(planner, text, ltl, groundings=[...], beam_width=4)``

Each beam is a plan prefix with its executed state. Expanding a beam scores every candidate
step by the LM log-probability of the step's tokens after the beam's text plus its weighted
grounding score; ending the plan scores EOS the same way. The ``beam_width`` best prefixes
survive; the best ended plan wins.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from envs.symbolic import InvalidStepError
from planners.grounding import PlanContext, Weighted, step_scores
from planners.plan_text import format_plan
from planners.planner import Plan, Planner


def advance(ctx: PlanContext, step: str) -> PlanContext:
    """The context after executing ``step``."""
    nxt = ctx.domain.apply(ctx.state, step)
    return replace(ctx, state=nxt, steps=(*ctx.steps, step), visited=(*ctx.visited, nxt),
                   steps_left=ctx.steps_left - 1, node=ctx.next_node(step))


def finish_plan(planner: Planner, ctx: PlanContext, n_tokens: int, t0: float, stop: str,
            extra: dict) -> Plan:
    """The :class:`Plan` of a finished decode, judged against the spec."""
    steps = list(ctx.steps)
    run = planner.domain.execute(ctx.visited[0], steps)
    ok = run.valid and (ctx.graph is None
                        or ctx.graph.dfa.accepts(planner.domain.trace(run.states)))
    seconds = time.perf_counter() - t0
    stats = {"new_tokens": n_tokens, "seconds": seconds, "stop": stop,
             "tokens_per_s": n_tokens / max(seconds, 1e-9), **extra}
    return Plan(steps, format_plan(steps), ok, run.valid, list(run.states), stats)


@dataclass
class _Beam:
    score: float
    tokens: list[int]
    ctx: PlanContext
    done: bool = False


def _unit_logprobs(planner: Planner, prefix: list[int], units: list[tuple[int, ...]]
                   ) -> tuple[list[float], float, int]:
    """LM log p of each unit after ``prefix`` and of EOS there, in one batched pass."""
    import torch

    eos = planner.tokenizer.eos_token_id
    width = max((len(u) for u in units), default=0)
    rows = [prefix + list(u) + [eos] * (width - len(u)) for u in units] or [prefix]
    with torch.no_grad():
        x = torch.tensor(rows)  # right padding never reaches the positions read
        logits = planner.model(input_ids=x, attention_mask=torch.ones_like(x)).logits.double()
    logp = torch.log_softmax(logits[:, len(prefix) - 1:], -1)
    out = []
    for i, u in enumerate(units):
        out.append(sum(float(logp[i, j, t]) for j, t in enumerate(u)))
    return out, float(logp[0, 0, eos]), 1


def beam_search(planner: Planner, ids: list[int], ctx: PlanContext,
                groundings: list[Weighted], top_k: int | None, beam_width: int) -> Plan:
    """Grounded beam search over steps (see the module docstring)."""
    eos = planner.tokenizer.eos_token_id
    limit = planner.context_limit()
    t0 = time.perf_counter()
    beams, passes = [_Beam(0.0, [], ctx)], 0
    while not all(b.done for b in beams):
        pool = [b for b in beams if b.done]
        for b in (b for b in beams if not b.done):
            scores, end = step_scores(b.ctx, planner.trie.unit_tokens, groundings)
            room = None if limit is None else limit - len(ids) - len(b.tokens) - 1
            cands = [s for s, g in scores.items() if g > -math.inf and b.ctx.steps_left > 0
                     and (room is None or len(planner.trie.unit_tokens[s]) <= room)]
            lm, lm_end, n = _unit_logprobs(planner, ids + b.tokens,
                                           [planner.trie.unit_tokens[s] for s in cands])
            passes += n
            options = [(b.score + lp + scores[s], s) for s, lp in zip(cands, lm, strict=True)]
            options.sort(key=lambda o: -o[0])
            if top_k is not None:
                options = options[:top_k]
            if end > -math.inf:
                pool.append(_Beam(b.score + lm_end + end, b.tokens + [eos], b.ctx, True))
            for total, s in options:
                try:
                    nxt = advance(b.ctx, s)
                except InvalidStepError:  # soft affordance: the plan ends invalid here
                    nxt = replace(b.ctx, steps=(*b.ctx.steps, s))
                    pool.append(_Beam(total, b.tokens + list(planner.trie.unit_tokens[s]),
                                      nxt, True))
                    continue
                pool.append(_Beam(total, b.tokens + list(planner.trie.unit_tokens[s]), nxt))
        if not pool:
            return finish_plan(planner, ctx, 0, t0, "dead_end",
                           {"forward_passes": passes, "decoder": "grounded-beam"})
        pool.sort(key=lambda b: -b.score)
        beams = pool[:beam_width]
    best = beams[0]
    stop = "eos" if best.tokens and best.tokens[-1] == eos else "invalid_step"
    return finish_plan(planner, best.ctx, len(best.tokens), t0, stop,
                   {"forward_passes": passes, "decoder": "grounded-beam",
                    "score": best.score})
