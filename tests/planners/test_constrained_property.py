"""Property: whatever the LM's scores, a plan decoded under the processor satisfies the spec."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.symbolic import generate_tasks
from planners.check import ProductGraph, spec_dfa
from planners.constrained import LTLLogitsProcessor
from planners.ltl import LTLf
from planners.plan_text import StepTrie, parse_plan

TASKS = generate_tasks("drone_nav", 20, seed=9) + generate_tasks("blocks_world", 20, seed=9)


@settings(max_examples=40)
@given(task_index=st.integers(0, len(TASKS) - 1), seed=st.integers(0, 2**16),
       max_steps=st.integers(6, 14))
def test_random_scores_always_give_satisfying_plans(bpe_tokenizer, task_index, seed, max_steps):
    task = TASKS[task_index]
    graph = ProductGraph(task.domain, spec_dfa(task.domain, task.ltl), task.initial_state)
    if graph.dist[graph.root] > max_steps:
        return
    trie = _trie(bpe_tokenizer, task.domain)
    eos = bpe_tokenizer.eos_token_id
    proc = LTLLogitsProcessor(graph, trie, 0, eos, max_steps)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(max_steps * trie.max_unit_length + 1):
        scores = proc(ids, torch.randn(1, len(bpe_tokenizer), generator=gen) * 5)
        probs = torch.softmax(scores, dim=-1)
        tok = torch.multinomial(probs, 1, generator=gen)
        ids = torch.cat([ids, tok], dim=1)
        if tok.item() == eos:
            break
    assert ids[0, -1].item() == eos, "the budget must force an accepting plan"
    steps = parse_plan(bpe_tokenizer.decode(ids[0, :-1].tolist()))
    run = task.domain.execute(task.initial_state, steps)
    assert run.valid and len(steps) <= max_steps
    assert LTLf(task.ltl).accepts(task.domain.trace(run.states))


_TRIES: dict = {}


def _trie(tok, domain):
    key = repr(domain)
    if key not in _TRIES:
        _TRIES[key] = StepTrie.build(tok, domain.steps())
    return _TRIES[key]
