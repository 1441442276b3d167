"""SELP-style constrained decoding, re-implemented as the baseline we measure against.

Usage: ``steps, stats = selp_decode(model, prompt_ids, trie, graph, eos, max_steps=16)``

As in the SELP release (see shared/reference/anchors.md): greedy decoding over a token trie of
the action strings (only trie children are allowed); after a full action, step the automaton
and keep the action only if an accepting state stays reachable (and, here, the action is
executable), else ban that action at this position and re-decode it; stop at acceptance (EOS
allowed in an accepting state). The prompt is re-encoded at every token (no KV reuse) and the
mask is rebuilt from the trie at every token (no precomputation), which is what makes it slow.
"""

from __future__ import annotations

import time

import torch

from planners.check import ProductGraph
from planners.plan_text import StepTrie


def trie_mask(trie: StepTrie, node: int, banned: set[str], vocab: int, eos: int | None
              ) -> torch.Tensor:
    """Additive mask (0 allowed, -inf banned) of the trie children not fully banned."""
    allowed = [t for t, ch in trie.children[node].items() if trie.steps_under[ch] - banned]
    if eos is not None:
        allowed.append(eos)
    mask = torch.full((vocab,), float("-inf"))
    if allowed:
        mask[torch.tensor(allowed)] = 0.0
    return mask


@torch.no_grad()
def selp_decode(model, prompt_ids: list[int], trie: StepTrie, graph: ProductGraph, eos: int,
                max_steps: int = 16, max_forwards: int = 2000, max_length: int | None = None
                ) -> tuple[list[str], dict]:
    """Greedy ban-and-retry decoding; returns the steps and stats.

    ``max_length`` caps the sequence (prompt included) at the model's context; decoding stops
    with ``stop="budget"`` when the next token would not fit.

    Stats: ``forwards`` (model calls), ``tokens`` (tokens decoded, retried ones included),
    ``retries``, ``mask_seconds`` (building masks and automaton checks), ``seconds``, ``stop``.
    """
    dfa = graph.dfa
    step_next = {n: dict(out) for n, out in graph.succ.items()}
    seq, node, steps = list(prompt_ids), graph.root, []
    banned: dict[int, set[str]] = {}
    stats = {"forwards": 0, "tokens": 0, "retries": 0, "mask_seconds": 0.0, "stop": "budget"}
    t_start = time.perf_counter()
    while len(steps) < max_steps and stats["forwards"] < max_forwards:
        start, tnode, ban = len(seq), 0, banned.setdefault(len(steps), set())
        while stats["forwards"] < max_forwards:
            if max_length is not None and len(seq) >= max_length:
                break
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]  # no KV reuse
            stats["forwards"] += 1
            t0 = time.perf_counter()
            accept = tnode == 0 and node[1] in dfa.accepting
            mask = trie_mask(trie, tnode, ban, logits.shape[-1],
                             eos if accept else None)
            stats["mask_seconds"] += time.perf_counter() - t0
            tok = int(torch.argmax(logits + mask))
            stats["tokens"] += 1
            if tok == eos or not torch.isfinite(mask[tok]):
                stats["stop"] = "eos" if tok == eos else "dead_end"
                break
            seq.append(tok)
            tnode = trie.children[tnode][tok]
            if trie.step_at[tnode] is not None:
                break
        if stats["stop"] != "budget" or trie.step_at[tnode] is None:
            break
        t0 = time.perf_counter()
        step = trie.step_at[tnode]
        nxt = step_next[node].get(step)  # None: not executable in this state
        ok = nxt is not None and nxt[1] in dfa.live
        stats["mask_seconds"] += time.perf_counter() - t0
        if ok:
            steps.append(step)
            node = nxt
        else:  # ban this action here and re-decode it
            ban.add(step)
            del seq[start:]
            stats["retries"] += 1
    stats["seconds"] = time.perf_counter() - t_start
    return steps, stats
