"""Composed paraphrase pairs: valid formulas, lifted entities, split tables, no evaluation text."""

import random

import pytest

from envs.symbolic import BlocksWorld, DroneNav
from planners.ltl import LTLf
from planners.nl2ltl import lift, lift_formula
from planners.nl2ltl_paraphrase import (
    NEVER,
    _Composer,
    _masked,
    evaluation_wordings,
    paraphrase_pairs,
)
from planners.nl2ltl_training import TranslatorConfig, corpus


@pytest.mark.parametrize("name", ["drone_nav", "blocks_world"])
def test_pairs_are_valid_lifted_and_never_evaluation_wordings(name):
    pairs = paraphrase_pairs(name, 400, seed=1)
    assert len(pairs) == 400 and len({t for t, _, _ in pairs}) > 390
    banned = evaluation_wordings(name)
    assert len(banned) >= 50
    for text, ltl, tag in pairs:
        domain = DroneNav(tag) if name == "drone_nav" else BlocksWorld()
        assert LTLf(ltl).atoms <= domain.atoms
        lifted, mapping = lift(text, domain)
        assert _masked(lifted) not in banned
        assert not {n for n in LTLf(lift_formula(ltl, mapping)).atoms
                    if not n.startswith(("x", "holding_x"))}, (text, ltl)


def test_split_tables_are_disjoint():
    train, dev = _Composer(random.Random(0), "train"), _Composer(random.Random(0), "dev")
    dev_only = {e for i, e in enumerate(NEVER) if i % 7 == 3}
    assert all(train.c(NEVER) not in dev_only for _ in range(300))
    assert all(dev.c(NEVER) in dev_only for _ in range(50))
    with pytest.raises(ValueError, match="split must"):
        _Composer(random.Random(0), "test")
    with pytest.raises(ValueError, match="domain must"):
        paraphrase_pairs("kitchen_nav", 3)


def test_corpus_mixes_templates_and_paraphrases_and_config_validates():
    data = corpus(10, 0, 15, "train")
    assert len(data) == 50 and all(p.startswith("task: ") and p.endswith("\nltl:")
                                   for p, _ in data)
    with pytest.raises(ValueError, match="split must"):
        TranslatorConfig(split="test")
    with pytest.raises(ValueError, match="n_embd"):
        TranslatorConfig(n_embd=30)
    with pytest.raises(ValueError, match="pairs \\+ paraphrases"):
        TranslatorConfig(pairs=0)
