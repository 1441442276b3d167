import pytest
import torch

from envs.symbolic import BlocksWorld, DroneNav, generate_tasks
from planners.check import ProductGraph, shortest_plan, spec_dfa
from planners.constrained import LTLLogitsProcessor
from planners.ltl import LTLf
from planners.plan_text import StepTrie, format_plan, parse_plan


def _processor(tok, domain, ltl, state, prompt_length=0, max_steps=None):
    graph = ProductGraph(domain, spec_dfa(domain, ltl), state)
    return LTLLogitsProcessor(graph, StepTrie.build(tok, domain.steps()), prompt_length,
                              tok.eos_token_id, max_steps)


def _allowed(proc, prefix, vocab):
    scores = proc(torch.tensor([prefix], dtype=torch.long), torch.zeros(1, vocab))
    return set(torch.isfinite(scores[0]).nonzero().flatten().tolist())


@pytest.mark.parametrize("tok_name", ["bpe_tokenizer", "unigram_tokenizer"])
def test_every_completion_satisfies_and_optimum_is_reachable(tok_name, request):
    """Enumerate every token sequence the processor admits (budget 4 steps)."""
    tok = request.getfixturevalue(tok_name)
    domain, ltl, start = DroneNav("school"), "F(gym) & G(!library)", "hall"
    proc = _processor(tok, domain, ltl, start, max_steps=4)
    vocab, eos, spec = len(tok), tok.eos_token_id, LTLf(ltl)
    finished, stack = [], [()]
    root = proc.walk(())
    assert _allowed(proc, [], vocab) == set(proc.allowed_tokens(root, proc.steps_left(root)))
    while stack:
        prefix = stack.pop()
        w = proc.walk(prefix)
        for t in proc.allowed_tokens(w, proc.steps_left(w)):
            (finished if t == eos else stack).append(prefix + (t,))
    assert finished
    plans = {tuple(parse_plan(tok.decode(list(p[:-1])))) for p in finished}
    for plan in plans:
        run = domain.execute(start, list(plan))
        assert run.valid and spec.accepts(domain.trace(run.states)) and len(plan) <= 4
    assert tuple(shortest_plan(domain, ltl, start)) in plans
    assert ("fly_to(library)",) not in {p[:1] for p in plans}


def test_tokens_follow_the_in_context_encoding(bpe_tokenizer):
    tok, d = bpe_tokenizer, BlocksWorld()
    trie = StepTrie.build(tok, d.steps())
    plan = ["pick(red)", "place(red, blue)"]
    ids = tok.encode("plan:" + format_plan(plan), add_special_tokens=False)
    assert ids[2:] == [*trie.unit_tokens[plan[0]], *trie.unit_tokens[plan[1]]] or \
        ids[len(tok.encode("plan:", add_special_tokens=False)):] == \
        [*trie.unit_tokens[plan[0]], *trie.unit_tokens[plan[1]]]
    # a leading space changes the tokens: the unit is not the bare step's encoding
    assert list(trie.unit_tokens["pick(red)"]) != tok.encode("pick(red)", add_special_tokens=False)


def test_eos_only_in_accepting_state(bpe_tokenizer):
    tok, d = bpe_tokenizer, DroneNav("office")
    proc = _processor(tok, d, "F(cafe)", "lobby", prompt_length=3)
    prompt = [5, 6, 7]
    assert tok.eos_token_id not in _allowed(proc, prompt, len(tok))
    done = prompt + tok.encode(" fly_to(reception) fly_to(cafe)", add_special_tokens=False)
    allowed = _allowed(proc, done, len(tok))
    assert tok.eos_token_id in allowed
    # not executable from the lobby: lab is two floors up
    lab_first = proc.trie.unit_tokens["fly_to(lab)"]
    assert any(lab_first[k] not in _allowed(proc, prompt + list(lab_first[:k]), len(tok))
               for k in range(len(lab_first)))
    cafe = proc.trie.unit_tokens["fly_to(reception)"]
    assert all(cafe[k] in _allowed(proc, prompt + list(cafe[:k]), len(tok))
               for k in range(len(cafe)))


def test_answers_depend_only_on_input_ids(bpe_tokenizer):
    tok, d = bpe_tokenizer, DroneNav("office")
    rows = [tok.encode(" fly_to(corridor_1)" * k, add_special_tokens=False) for k in (0, 1, 2)]
    width = max(len(r) for r in rows)
    batch = torch.tensor([[tok.eos_token_id] * 0 + r + [0] * 0 for r in rows
                          if len(r) == width] or [rows[2]])
    used = _processor(tok, d, "F(lab)", "lobby")
    for r in rows:  # warm the caches with other prefixes
        used(torch.tensor([r]), torch.randn(1, len(tok)))
    fresh = _processor(tok, d, "F(lab)", "lobby")
    scores = torch.randn(len(batch), len(tok))
    assert torch.equal(used(batch, scores), fresh(batch, scores))
    flipped = torch.cat([batch, batch]).flip(0)
    out = fresh(flipped, torch.cat([scores, scores]).flip(0))
    assert torch.equal(out.flip(0)[: len(batch)], used(batch, scores))


def test_off_language_prefix_only_allows_eos(bpe_tokenizer):
    tok = bpe_tokenizer
    proc = _processor(tok, DroneNav("office"), "F(cafe)", "lobby")
    junk = tok.encode(" hello world", add_special_tokens=False)
    assert _allowed(proc, junk, len(tok)) == {tok.eos_token_id}


@pytest.mark.parametrize("domain_name", ["drone_nav", "blocks_world"])
def test_random_gpt2_plans_satisfy_by_construction(domain_name, bpe_tokenizer, gpt2_bpe):
    """Greedy, sampling and beam search through model.generate, on random weights."""
    from planners.planner import Planner

    tasks = generate_tasks(domain_name, 3, seed=5)
    for i, task in enumerate(tasks):
        planner = Planner(gpt2_bpe, bpe_tokenizer, task.domain, max_steps=10)
        kw = [{}, {"do_sample": True, "top_k": 50}, {"num_beams": 3}][i % 3]
        torch.manual_seed(i)
        plan = planner.plan(task.instruction, task.ltl, task.initial_state, **kw)
        assert plan.valid and plan.satisfied, (task.ltl, plan.text, kw)
        assert plan.stats["stop"] == "eos" and len(plan.steps) <= 10


def test_llama_with_unigram_tokenizer(unigram_tokenizer, llama_unigram):
    from planners.planner import Planner

    task = generate_tasks("blocks_world", 1, seed=7)[0]
    planner = Planner(llama_unigram, unigram_tokenizer, task.domain, max_steps=10)
    plan = planner.plan(task.instruction, task.ltl, task.initial_state)
    assert plan.valid and plan.satisfied, plan.text
    free = planner.plan(task.instruction, task.ltl, task.initial_state, constrained=False)
    assert not free.satisfied  # random weights write garbage without the mask
