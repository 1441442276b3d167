"""The ``tabletop_rearrange`` symbolic domain: registered, seeded tasks mirroring the env's."""

import numpy as np
import pytest

from envs.symbolic import DOMAINS, generate_tasks, make_domain
from envs.tabletop.rearrange_domain import TABLE, RearrangeDomain
from envs.tabletop.rearrange_tasks import PHRASINGS, sample_rearrange_task
from planners.check import check_plan, shortest_plan
from planners.ltl import LTLf


def test_registered_and_built_by_name():
    assert "tabletop_rearrange" in DOMAINS
    domain = make_domain("tabletop_rearrange")
    assert isinstance(domain, RearrangeDomain) and domain.name == "tabletop_rearrange"
    with pytest.raises(ValueError, match="tabletop_rearrange"):
        make_domain("tabletop_rearange")


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_tasks_parse_use_only_domain_atoms_and_are_satisfiable(split):
    tasks = generate_tasks("tabletop_rearrange", 60, seed=3, split=split)
    assert _keys(tasks) == _keys(generate_tasks("tabletop_rearrange", 60, seed=3, split=split))
    assert _keys(tasks) != _keys(generate_tasks("tabletop_rearrange", 60, seed=4, split=split))
    for task in tasks:
        spec, goal = LTLf(task.ltl), LTLf(task.goal_ltl)
        assert spec.atoms and spec.atoms <= task.domain.atoms, task.ltl
        assert goal.atoms <= spec.atoms
        assert task.split == split and task.template.startswith(task.info["pattern"] + "/")
        train, held = PHRASINGS[task.info["pattern"]]
        assert any(p.format(**_fields(task)) == task.instruction
                   for p in (train if task.template.split("/")[1].startswith("train") else held))
        plan = shortest_plan(task.domain, task.ltl, task.initial_state)
        assert plan, task.instruction
        assert all(step.startswith("put(") for step in plan)
        c = check_plan(task.domain, plan, task.ltl, task.initial_state, task.goal_ltl)
        assert c.safe and c.success
        assert not goal.accepts([task.domain.label(task.initial_state)])


def _keys(tasks):
    """What identifies each task (domains compare by identity)."""
    return [(t.instruction, t.ltl, t.initial_state, t.template) for t in tasks]


def _fields(task):
    """Template fields of a task's placements and avoid zone."""
    out = {"avoid": task.info["avoid"]}
    for i, (b, z) in enumerate(task.info["placements"]):
        out |= {f"b{i + 1}": b, f"z{i + 1}": z}
    return out


def test_splits_follow_the_env_and_initial_states_vary():
    train = generate_tasks("tabletop_rearrange", 200, seed=0, split="train")
    held = generate_tasks("tabletop_rearrange", 200, seed=0, split="heldout")
    assert not any("heldout" in t.template for t in train)
    assert any("heldout" in t.template for t in held)
    assert {t.info["pattern"] for t in train} == set(PHRASINGS)
    empty = RearrangeDomain().initial()
    starts = [t.initial_state for t in train]
    assert 0.5 < sum(s == empty for s in starts) / len(starts) < 0.95
    for s in starts:
        if s != empty:
            assert sum(loc != TABLE for _, loc in s) == 1
    # the env's own sampler draws the same kind of instruction and formula
    env_task = sample_rearrange_task(np.random.default_rng(0), "train")
    assert LTLf(env_task.formula).atoms <= RearrangeDomain().atoms
