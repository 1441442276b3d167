"""Plan text comes from the step strings the trie matched, whatever the tokenizer's decode does."""

import pytest
import torch
from tiny_lms import domain_corpus

from envs.symbolic import generate_tasks
from planners.check import check_plan
from planners.plan_text import PLAN_MARKER, encode, format_plan
from planners.planner import Planner

TOKENIZERS = ["wordpiece_tokenizer", "bpe_tokenizer", "unigram_tokenizer"]


def tiny_gpt2(vocab_size: int, seed: int = 0):
    """A 2-layer GPT-2 with random weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg).eval()


def test_wordpiece_decode_inserts_spaces(wordpiece_tokenizer):
    """The failure this guards against: decode gives ``fly_to ( lab )``."""
    ids = encode(wordpiece_tokenizer, "fly_to(lab) fly_to(cafe)")
    assert wordpiece_tokenizer.decode(ids) != "fly_to(lab) fly_to(cafe)"


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("name", ["drone_nav", "blocks_world"])
def test_constrained_plans_are_valid_with_every_tokenizer(tok_name, name, request):
    tok = request.getfixturevalue(tok_name)
    model = tiny_gpt2(len(tok), seed=3)
    tasks = generate_tasks(name, 6, seed=5, split="heldout")
    planner = Planner(model, tok, tasks[0].domain, max_steps=16)
    for i, task in enumerate(tasks):
        p = planner.with_domain(task.domain)
        kwargs = {"do_sample": True} if i % 2 else {}
        if kwargs:
            torch.manual_seed(i)
        plan = p.plan(task.instruction, task.ltl, task.initial_state, **kwargs)
        assert plan.valid and plan.satisfied and plan.stats["stop"] == "eos", (plan.text, tok_name)
        assert plan.text == format_plan(plan.steps)
        assert check_plan(task.domain, plan.steps, task.ltl, task.initial_state).safe


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_free_text_is_read_through_the_trie(tok_name, request):
    """Unconstrained output that spells steps is read as those steps, junk after it kept."""
    tok = request.getfixturevalue(tok_name)
    task = generate_tasks("drone_nav", 1, seed=2)[0]
    planner = Planner(tiny_gpt2(len(tok)), tok, task.domain)
    steps = list(task.domain.applicable(task.initial_state))[:1]
    steps.append(task.domain.applicable(task.domain.apply(task.initial_state, steps[0]))[0])
    context = encode(tok, PLAN_MARKER)
    ids = encode(tok, PLAN_MARKER + format_plan(steps))[len(context):]
    got, text = planner.plan_steps(ids)
    assert got == steps and text == format_plan(steps)
    junk = encode(tok, PLAN_MARKER + format_plan(steps) + " hello")[len(context):]
    got, text = planner.plan_steps(junk)
    assert got[:2] == steps and got[2:] and "hello" in text


@pytest.fixture(scope="module")
def spanning_tokenizer():
    """Byte-level BPE without the pre-tokenizer's word split: tokens like ``lab)Ġfly_to(``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(domain_corpus(), trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


@pytest.mark.parametrize("name", ["drone_nav", "blocks_world"])
def test_tokens_spanning_step_boundaries(spanning_tokenizer, name):
    """A vocabulary whose tokens cross ``plan:``/step and step/step boundaries still plans.

    Before, building the planner raised "tokenizer merges 'plan:' with the step ...".
    """
    tok = spanning_tokenizer
    pieces = tok.convert_ids_to_tokens(encode(tok, "plan: fly_to(lab) fly_to(cafe)"))
    assert any(")Ġ" in p for p in pieces) and any(":Ġ" in p for p in pieces), pieces
    tasks = generate_tasks(name, 4, seed=5, split="heldout")
    planner = Planner(tiny_gpt2(len(tok), seed=3), tok, tasks[0].domain, max_steps=16)
    for i, task in enumerate(tasks):
        kwargs = {"do_sample": True} if i % 2 else {}
        torch.manual_seed(i)
        here = planner.with_domain(task.domain)
        assert not here.trie.in_context
        plan = here.plan(task.instruction, task.ltl, task.initial_state, **kwargs)
        assert plan.satisfied and plan.stats["stop"] == "eos", plan.text
        assert plan.text == format_plan(plan.steps)
        assert check_plan(task.domain, plan.steps, task.ltl, task.initial_state).safe
        units = [here.trie.unit_tokens[s] for s in plan.steps]
        assert tok.decode([t for u in units for t in u]) == format_plan(plan.steps)
