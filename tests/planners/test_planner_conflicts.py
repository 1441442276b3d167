"""Other processors that ban tokens must not yield a truncated or unsafe plan: a clear error."""

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from envs.symbolic import DroneNav
from planners.check import check_plan
from planners.constrained import ConstraintConflictError, LTLLogitsProcessor
from planners.plan_text import encode, format_prompt
from planners.planner import Planner


class _Ban(LogitsProcessor):
    """Bans fixed token ids (a stand-in for any user processor)."""

    def __init__(self, ids):
        self.ids = list(ids)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] = float("-inf")
        return scores


@pytest.mark.parametrize("decoder", ["generate", "autoregressive"])
def test_no_repeat_ngram_on_a_plan_that_repeats_tokens(bpe_tokenizer, gpt2_bpe, decoder):
    """Every multi-step DroneNav plan repeats the bigram of ``fly_to``: nothing is left allowed."""
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"))
    kwargs = {"no_repeat_ngram_size": 2} if decoder == "generate" else {}
    if decoder == "autoregressive":
        from transformers import NoRepeatNGramLogitsProcessor

        kwargs = {"logits_processor": [NoRepeatNGramLogitsProcessor(2)]}
    with pytest.raises(ConstraintConflictError, match="no_repeat_ngram_size"):
        planner.plan("go to the lab", "F(lab)", "lobby", decoder=decoder, **kwargs)
    torch.manual_seed(0)
    sample = {"do_sample": True} if decoder == "generate" else {"temperature": 1.0}
    with pytest.raises(ConstraintConflictError):
        planner.plan("go to the lab", "F(lab)", "lobby", decoder=decoder, **kwargs, **sample)


def test_no_conflict_no_error(bpe_tokenizer, gpt2_bpe):
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"), max_steps=1)
    plan = planner.plan("go to the corridor", "F(corridor_1)", "lobby", no_repeat_ngram_size=2)
    assert plan.satisfied and plan.steps == ["fly_to(corridor_1)"]


def test_a_user_processor_that_bans_the_only_way(bpe_tokenizer, gpt2_bpe):
    planner = Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"))
    unit = planner.trie.unit_tokens["fly_to(corridor_1)"]
    ban = [t for t in unit if t not in planner.trie.unit_tokens["fly_to(reception)"]]
    with pytest.raises(ConstraintConflictError, match="banned every token"):
        planner.plan("go to the lab", "F(lab)", "lobby", logits_processor=[_Ban(ban[-1:])])


def test_a_processor_running_after_the_constraint_is_caught_afterwards(bpe_tokenizer, gpt2_bpe):
    """Ordered after LTLLogitsProcessor, a ban is invisible to it; the result check catches it."""
    d = DroneNav("office")
    planner = Planner(gpt2_bpe, bpe_tokenizer, d)
    graph = planner.graph("F(lab)", "lobby")
    ids = encode(bpe_tokenizer, format_prompt(d.describe("lobby"), "go to the lab"))
    eos = bpe_tokenizer.eos_token_id
    proc = LTLLogitsProcessor(graph, planner.trie, len(ids), eos, 16)
    x = torch.tensor([ids])
    out = gpt2_bpe.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=40,
                            logits_processor=LogitsProcessorList([proc, _Ban(
                                planner.trie.unit_tokens["fly_to(corridor_1)"][-1:])]),
                            do_sample=False, eos_token_id=eos, pad_token_id=eos)
    new = out[0, len(ids):].tolist()
    with pytest.raises(ConstraintConflictError):
        proc.check_plan_tokens(new[: new.index(eos) + 1] if eos in new else new)
    ok = planner.plan("go to the lab", "F(lab)", "lobby")
    good = [t for s in ok.steps for t in planner.trie.unit_tokens[s]] + [eos]
    proc.check_plan_tokens(good)  # a complete allowed plan passes
    with pytest.raises(ConstraintConflictError, match="before the plan was complete"):
        proc.check_plan_tokens(good[:-3])
    assert check_plan(d, ok.steps, "F(lab)", "lobby").safe
