import pytest
import torch

from envs.symbolic import BlocksWorld, DroneNav, generate_tasks
from planners.check import UnknownAtomError, UnsatisfiableSpecError, check_plan
from planners.plan_text import parse_plan
from planners.planner import Planner


class _NoCall(torch.nn.Module):
    """A model that fails the test if the planner calls it."""

    def forward(self, *args, **kwargs):
        raise AssertionError("the LM must not be called")

    def generate(self, *args, **kwargs):
        raise AssertionError("the LM must not be called")


def test_errors_before_any_lm_call(bpe_tokenizer):
    planner = Planner(_NoCall(), bpe_tokenizer, DroneNav("office"), max_steps=3)
    with pytest.raises(UnknownAtomError, match="attic.*kitchen"):
        planner.plan("go to the attic", ltl="F(attic)", state="lobby")
    with pytest.raises(UnsatisfiableSpecError):
        planner.plan("go to the lab", ltl="F(lab) & G(!corridor_3)", state="lobby")
    with pytest.raises(UnsatisfiableSpecError):
        planner.plan("stay", ltl="G(lobby) & F(cafe)", state="lobby")
    plan = planner.plan("go to the lab", ltl="F(lab)", state="lobby")  # needs 6 steps > 3
    assert plan.stats["stop"] == "no_plan_within_budget" and not plan.satisfied
    assert plan.stats["shortest"] == 6
    with pytest.raises(ValueError, match="decoder"):
        planner.plan("x", ltl="F(cafe)", state="lobby", decoder="beam")


def test_grounding_only_without_ltl(bpe_tokenizer, gpt2_bpe):
    d = BlocksWorld(("red", "blue", "green"))
    planner = Planner(gpt2_bpe, bpe_tokenizer, d, max_steps=4)
    plan = planner.plan("do something", state=d.initial())
    assert plan.valid and plan.satisfied and len(plan.steps) <= 4


def test_autoregressive_decoder_reuses_prompt_cache(bpe_tokenizer, gpt2_bpe):
    task = generate_tasks("drone_nav", 1, seed=11)[0]
    planner = Planner(gpt2_bpe, bpe_tokenizer, task.domain, max_steps=16)
    a = planner.plan(task.instruction, task.ltl, task.initial_state, decoder="autoregressive")
    cache = planner._prefix[1]
    length = cache.get_seq_length()
    b = planner.plan(task.instruction, task.ltl, task.initial_state, decoder="autoregressive")
    assert planner._prefix[1] is cache and cache.get_seq_length() == length  # reused, unchanged
    g = planner.plan(task.instruction, task.ltl, task.initial_state)  # model.generate, greedy
    assert a.stats["stop"] == "eos" and a.steps == b.steps == g.steps
    assert a.satisfied and check_plan(task.domain, a.steps, task.ltl, task.initial_state).safe
    s = planner.plan(task.instruction, task.ltl, task.initial_state, decoder="autoregressive",
                     temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert s.satisfied


def test_with_domain_keeps_the_model(bpe_tokenizer, gpt2_bpe):
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"))
    other = planner.with_domain(DroneNav("museum"))
    assert other.model is planner.model and other.domain.layout.name == "museum"
    assert "fly_to(foyer)" in other.trie.unit_tokens


def test_processor_under_jacobi_matches_autoregressive(bpe_tokenizer, gpt2_bpe):
    """Jacobi calls the processor on unverified guesses; greedy results must still agree."""
    from decoding import autoregressive, jacobi
    from planners.constrained import LTLLogitsProcessor
    from planners.plan_text import encode, format_prompt

    task = generate_tasks("blocks_world", 1, seed=4)[0]
    planner = Planner(gpt2_bpe, bpe_tokenizer, task.domain, max_steps=8)
    graph = planner.graph(task.ltl, task.initial_state)
    ids = torch.tensor([encode(bpe_tokenizer, format_prompt(
        task.domain.describe(task.initial_state), task.instruction))])
    eos = bpe_tokenizer.eos_token_id
    outs = []
    for decode in (autoregressive, jacobi):
        proc = LTLLogitsProcessor(graph, planner.trie, ids.shape[1], eos, 8)
        r = decode(gpt2_bpe, ids, 40, eos_token_id=eos, logits_processor=[proc])
        outs.append(r.tokens[0, : int(r.lengths[0])].tolist())
    assert outs[0] == outs[1]
    text = bpe_tokenizer.decode(outs[0][:-1] if outs[0][-1] == eos else outs[0])
    run = task.domain.execute(task.initial_state, parse_plan(text))
    assert run.valid


@pytest.mark.parametrize("name", ["drone_nav", "blocks_world"])
def test_from_default_plans_offline_with_the_shipped_lm(name):
    planner = Planner.from_default(name)
    task = generate_tasks(name, 1, seed=1)[0]
    planner = planner.with_domain(task.domain)
    plan = planner.plan(task.instruction, task.ltl, task.initial_state)
    assert plan.valid and plan.satisfied and plan.stats["stop"] == "eos"
    c = check_plan(task.domain, plan.steps, task.ltl, task.initial_state, task.goal_ltl)
    assert c.safe and c.success


def test_from_default_unknown_domain():
    with pytest.raises(ValueError, match="drone_nav"):
        Planner.from_default("kitchen_world")


def test_plans_fit_the_model_context(bpe_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe_tokenizer), n_positions=56, n_embd=16,
                                       n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0))
    d = DroneNav("office")
    planner = Planner(model.eval(), bpe_tokenizer, d, max_steps=16)
    assert planner.context_limit() == 56
    plan = planner.plan("go to the cafe", ltl="F(cafe)", state="lobby")
    assert plan.satisfied  # 2 steps fit; the step budget shrank to the context
    far = planner.plan("go to the lab", ltl="F(lab)", state="lobby")
    assert far.stats["stop"] == "no_plan_within_budget"
    free = planner.plan("go to the cafe", ltl="F(cafe)", state="lobby", constrained=False)
    assert free.stats["new_tokens"] <= 56
