"""NL -> LTL: lifting, equivalence voting, the shipped translator, the pair generator."""

from pathlib import Path

import pytest

from envs.symbolic import BlocksWorld, DroneNav
from envs.symbolic.instructions import generate_pairs, heldout_phrasings, patterns
from planners.nl2ltl import Translator, lift, lift_formula, same, unlift_formula, vote

SHIPPED = Path(__file__).resolve().parents[2] / "planners" / "default_lm" / "nl2ltl"


def test_lift_round_trip_on_a_new_layout():
    museum = DroneNav("museum")
    text, mapping = lift("Visit Gallery A, then the gift shop; never the gallery a again.", museum)
    assert text == "visit x1, then the x2; never the x1 again."
    assert mapping == {"x1": "gallery_a", "x2": "gift_shop"}
    lifted = lift_formula("F(gallery_a & F(gift_shop))", mapping)
    assert lifted == "F(x1 & F(x2))"
    assert unlift_formula(lifted, mapping) == "F(gallery_a & F(gift_shop))"
    _, m = lift("stack red on blue, never hold green.", BlocksWorld())
    assert unlift_formula("F(x1_on_x2) & G(!holding_x3)", m) == \
        "F(red_on_blue) & G(!holding_green)"



def test_lift_reads_entity_names_written_as_atoms():
    """"server_room", "corridor-1": entity names spelled with underscores or hyphens.

    Before, only "server room" was lifted, so the translator saw an unlifted name and wrote
    junk (``F(!!server_room W ...)``) or dropped the constraint on it.
    """
    office = DroneNav("office")
    text, mapping = lift("Never enter the server_room; reach Corridor-1, then the lab.", office)
    assert text == "never enter the x1; reach x2, then the x3."
    assert mapping == {"x1": "server_room", "x2": "corridor_1", "x3": "lab"}
    assert lift("go to the mail_roomx", office)[1] == {}  # still whole words only
    tr = Translator.load(SHIPPED)
    assert tr.translate("go to the server_room", office).matches("F(server_room)", office)

def test_vote_groups_by_equivalence_drops_junk_and_breaks_ties_early():
    d = DroneNav("office")
    v = vote(["F(lab) & G(!cafe)", "F(lab", "G(!cafe) & F(lab)", "F(attic)", "F(kitchen)",
              "F(lab) & !F(cafe)"], d)
    assert v.formula == "F(lab) & G(!cafe)" and v.votes[0][1] == 3 and v.dropped == 2
    tie = vote(["F(kitchen)", "F(lab)"], d)
    assert tie.formula == "F(kitchen)" and [c for _, c in tie.votes] == [1, 1]
    assert vote(["((", "F(moon)"], d).formula is None
    assert same("F(lab) & F(cafe & WX false)", "F(lab) & F(cafe & WX false)", d)


def test_shipped_translator_translates_and_votes():
    tr = Translator.load(SHIPPED)
    d = DroneNav("museum")  # a layout the translator never saw
    v = tr.translate("go to the studio without entering the archive.", d)
    assert v.matches("F(studio) & G(!archive)", d)
    assert sum(c for _, c in v.votes) + v.dropped == tr.k == 10
    assert same(tr.greedy("stack red on blue.", BlocksWorld()), "F(red_on_blue)", BlocksWorld())
    with pytest.raises(ValueError, match="instruction"):
        tr.translate("  ", d)
    with pytest.raises(ValueError, match="k must"):
        Translator(tr.model, tr.tokenizer, k=0)
    with pytest.raises(ValueError, match="no translator"):
        Translator.load(SHIPPED.parent / "nowhere")


def test_generator_has_many_paraphrases_and_never_the_handwritten_ones():
    drone = patterns("drone_nav")
    assert len(drone) >= 10 and sum(len(t) for _, t in drone.values()) >= 300
    for name in ("drone_nav", "blocks_world"):
        hand = heldout_phrasings(name)
        assert len(hand) >= 50
        generated = {t.lower() for t, _, _ in generate_pairs(name, 3000, seed=0)}
        assert not generated & {h["instruction"].lower() for h in hand}
    with pytest.raises(ValueError, match="domain must be"):
        patterns("kitchen_nav")


def test_eval_nl2ltl_sets_and_accuracy():
    from experiments.eval_nl2ltl import item_sets, translation_accuracy

    sets = item_sets("drone_nav", 6, seed=0)
    assert set(sets) == {"train tasks", "held-out tasks", "held-out layout", "hand-written"}
    assert all(d.layout.name == "museum" for _, _, d in sets["held-out layout"])
    assert len(sets["held-out layout"]) == 6 and len(sets["hand-written"]) >= 50
    tr = Translator.load(SHIPPED, k=3)
    acc = translation_accuracy(tr, sets["train tasks"][:3])
    assert acc["n"] == 3 and acc["voted"] == 1.0 and acc["no_sample_parsed"] == 0
    assert all(r["dropped"] == 0 for r in acc["rows"])  # constrained: every sample parses
