"""The plan budget counts the tokens of the steps actually taken, within the model's context."""

import pytest
import torch

from envs.symbolic import BlocksWorld, DroneNav, Layout
from planners.check import check_plan, shortest_plan
from planners.plan_text import encode, format_prompt
from planners.planner import Planner, PromptTooLongError


def _gpt2(vocab_size: int, n_positions: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=16, n_layer=1,
                     n_head=2, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def _prompt_tokens(tokenizer, domain, state, instruction: str) -> int:
    return len(encode(tokenizer, format_prompt(domain.describe(state), instruction)))


def _plan_tokens(planner: Planner, steps) -> int:
    return sum(len(planner.trie.unit_tokens[s]) for s in steps)


BLOCKS_14 = "F(yellow_on_green & green_on_blue & blue_on_red & red_on_right)"


@pytest.mark.parametrize("decoder", ["generate", "autoregressive"])
def test_a_14_step_blocks_plan_that_fits_the_context_is_found(bpe_tokenizer, decoder):
    """Old budget: (context - prompt - 1) // longest step = 12 steps < 14 needed: no plan."""
    d = BlocksWorld()
    start = d.make_state({"left": ["red", "blue", "green", "yellow"]})
    best = shortest_plan(d, BLOCKS_14, start)
    assert len(best) == 14
    instruction = "reverse the tower onto the right spot."
    prompt = _prompt_tokens(bpe_tokenizer, d, start, instruction)
    probe = Planner(_gpt2(len(bpe_tokenizer), 512), bpe_tokenizer, d, max_steps=16)
    need = _plan_tokens(probe, best) + 1  # the plan's tokens and EOS
    model = _gpt2(len(bpe_tokenizer), prompt + need + 4)
    planner = Planner(model, bpe_tokenizer, d, max_steps=16)
    plan = planner.plan(instruction, BLOCKS_14, start, decoder=decoder)
    assert plan.satisfied and plan.stats["stop"] == "eos", plan.stats
    assert len(plan.steps) >= 14
    assert prompt + plan.stats["new_tokens"] <= model.config.n_positions
    assert check_plan(d, plan.steps, BLOCKS_14, start).safe
    assert plan.stats["limited_by"] == "context"  # the context, not the spec, bound it


def test_long_object_names_do_not_shrink_the_budget_of_short_steps(bpe_tokenizer):
    """One room with a 20-token name made every step count as 20 tokens."""
    long_room = "grand_old_ceremonial_reception_hall_of_the_east_wing_annex"
    layout = Layout("campus", (("lobby", "cafe", long_room), ("lab", "kitchen")))
    d = DroneNav(layout)
    probe = Planner(_gpt2(len(bpe_tokenizer), 512), bpe_tokenizer, d)
    assert probe.trie.max_unit_length >= 3 * len(probe.trie.unit_tokens["fly_to(lab)"]) // 2
    best = shortest_plan(d, "F(lab)", "lobby")
    instruction = "go to the lab."
    prompt = _prompt_tokens(bpe_tokenizer, d, "lobby", instruction)
    n_positions = prompt + _plan_tokens(probe, best) + 1 + 2
    planner = Planner(_gpt2(len(bpe_tokenizer), n_positions), bpe_tokenizer, d, max_steps=16)
    plan = planner.plan(instruction, "F(lab)", "lobby")
    assert plan.satisfied and len(plan.steps) == len(best) == 5
    assert prompt + plan.stats["new_tokens"] <= n_positions


def test_budget_is_reported_and_unlimited_plans_say_so(bpe_tokenizer, gpt2_bpe):
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"), max_steps=16)
    plan = planner.plan("go to the cafe", "F(cafe)", "lobby")
    assert plan.satisfied and plan.stats["limited_by"] is None
    assert plan.stats["max_steps"] == 16 and plan.stats["max_new_tokens"] > 0
    short = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"), max_steps=6)
    plan = short.plan("go to the lab", "F(lab)", "lobby")  # exactly 6 steps: the step cap binds
    assert plan.satisfied and len(plan.steps) == 6 and plan.stats["limited_by"] == "max_steps"


def test_no_plan_within_the_context_says_the_context_limited_it(bpe_tokenizer):
    d = DroneNav("office")
    instruction = "go to the lab"
    prompt = _prompt_tokens(bpe_tokenizer, d, "lobby", instruction)
    planner = Planner(_gpt2(len(bpe_tokenizer), prompt + 12), bpe_tokenizer, d)
    plan = planner.plan(instruction, "F(lab)", "lobby")
    assert plan.stats["stop"] == "no_plan_within_budget" and not plan.satisfied
    assert plan.stats["limited_by"] == "context" and plan.stats["shortest"] == 6


def test_a_prompt_longer_than_the_context_is_a_clear_error(bpe_tokenizer, gpt2_bpe):
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"))
    with pytest.raises(PromptTooLongError, match=r"prompt.*\d+ tokens.*256"):
        planner.plan("go to the cafe " * 1334, "F(cafe)", "lobby")  # 20,010 characters
    with pytest.raises(ValueError, match="context"):
        planner.plan("x" * 20_000, "F(cafe)", "lobby", constrained=False)


@pytest.mark.parametrize("decoder", ["generate", "autoregressive"])
def test_max_new_tokens_is_a_token_budget_the_plan_keeps(bpe_tokenizer, gpt2_bpe, decoder):
    """``max_new_tokens=`` among the decode options was a TypeError (passed twice)."""
    from planners.constrained import LTLLogitsProcessor

    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"), max_steps=16)
    graph = planner.graph("F(lab)", "lobby")
    proc = LTLLogitsProcessor(graph, planner.trie, 0, bpe_tokenizer.eos_token_id, 16)
    need = proc.fewest_tokens(graph.root, 16) + 1  # the fewest plan tokens and EOS
    plan = planner.plan("go to the lab", "F(lab)", "lobby", decoder=decoder, max_new_tokens=need)
    assert plan.satisfied and plan.stats["stop"] == "eos"
    assert plan.stats["new_tokens"] <= need and plan.stats["max_new_tokens"] == need
    assert plan.stats["limited_by"] == "max_new_tokens"
    short = planner.plan("go to the lab", "F(lab)", "lobby", decoder=decoder,
                         max_new_tokens=need - 1)
    assert short.stats["stop"] == "no_plan_within_budget" and not short.satisfied
    assert short.stats["limited_by"] == "max_new_tokens"
    with pytest.raises(ValueError, match="max_new_tokens"):
        planner.plan("go to the lab", "F(lab)", "lobby", decoder=decoder, max_new_tokens=0)
