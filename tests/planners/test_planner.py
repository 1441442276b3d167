import pytest
import torch

from envs.symbolic import BlocksWorld, DroneNav, generate_tasks
from planners.check import UnknownAtomError, UnsatisfiableSpecError, check_plan
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
