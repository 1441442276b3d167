"""Bad planner inputs raise errors that name the problem, before any LM call."""

import pytest
import torch
from tiny_lms import TOKENIZERS, tiny_gpt2

from envs.symbolic import BlocksState, BlocksWorld, DroneNav, InvalidStateError
from planners.check import ProductGraph, check_plan, shortest_plan, spec_dfa
from planners.planner import Planner


class _NoCall(torch.nn.Module):
    """A model that fails the test if the planner calls it."""

    def forward(self, *args, **kwargs):
        raise AssertionError("the LM must not be called")

    def generate(self, *args, **kwargs):
        raise AssertionError("the LM must not be called")


def test_unknown_start_room(bpe_tokenizer):
    planner = Planner(_NoCall(), bpe_tokenizer, DroneNav("office"))
    with pytest.raises(InvalidStateError, match="unknown room 'attic'.*lobby"):
        planner.plan("go to the lab", "F(lab)", state="attic")  # a KeyError before
    with pytest.raises(InvalidStateError, match="attic"):
        shortest_plan(DroneNav("office"), "F(lab)", "attic")
    with pytest.raises(InvalidStateError, match="attic"):
        check_plan(DroneNav("office"), ["fly_to(lab)"], "F(lab)", "attic")


@pytest.mark.parametrize("state", [3, ("lobby",), ["lobby"], b"lobby", 2.5])
def test_start_of_the_wrong_type(bpe_tokenizer, state):
    planner = Planner(_NoCall(), bpe_tokenizer, DroneNav("office"))
    with pytest.raises(TypeError, match="node name"):
        planner.plan("go to the lab", "F(lab)", state=state)


def test_blocks_start_of_the_wrong_type_or_with_an_unknown_block(bpe_tokenizer):
    d = BlocksWorld(("red", "blue", "green"))
    planner = Planner(_NoCall(), bpe_tokenizer, d)
    with pytest.raises(TypeError, match="BlocksState"):
        planner.plan("stack", "F(red_on_blue)", state="lobby")
    ghost = BlocksState((("blue", "red"), ("green", "center"), ("purple", "left")))
    with pytest.raises(InvalidStateError, match="purple"):
        planner.plan("stack", "F(red_on_blue)", state=ghost)  # accepted before
    with pytest.raises(InvalidStateError, match="purple"):
        ProductGraph(d, spec_dfa(d, "F(red_on_blue)"), ghost)


@pytest.mark.parametrize("instruction", [None, 3, b"go", ["go to the lab"]])
def test_instruction_must_be_text(bpe_tokenizer, instruction):
    planner = Planner(_NoCall(), bpe_tokenizer, DroneNav("office"))
    with pytest.raises(TypeError, match="instruction must be a str"):
        planner.plan(instruction, "F(lab)", state="lobby")


def test_raw_tokenizer_keeps_its_own_eos():
    """A raw ``tokenizers.Tokenizer`` whose EOS is ``</s>`` plans with it.

    The wrapper used to invent an ``<|endoftext|>`` token (id 32000, past the LM's vocabulary):
    an IndexError when masking.
    """
    from tokenizers import Tokenizer, models

    raw = Tokenizer.from_file(str(TOKENIZERS / "unigram" / "tokenizer.json"))
    planner = Planner(tiny_gpt2(raw.get_vocab_size()), raw, DroneNav("office"), max_steps=8)
    assert planner.tokenizer.eos_token == "</s>"
    assert planner.tokenizer.eos_token_id == raw.token_to_id("</s>")
    assert planner.plan("go to the lab", "F(lab)", "lobby").satisfied
    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    with pytest.raises(ValueError, match="eos_token"):
        Planner(_NoCall(), bare, DroneNav("office"))
