"""Grounded decoding: weighted grounding functions, greedy and beam, state updates, errors."""

import math

import pytest

from envs.symbolic import DroneNav, generate_tasks
from envs.symbolic.features import goal_distance, step_cost
from planners import Planner
from planners.check import check_plan
from planners.grounded import grounded_plan
from planners.grounding import (
    Affordance,
    Cost,
    GoalProgress,
    NoRevisit,
    Safety,
    positive_atoms,
)
from planners.ltl import LTLf

FULL = [(1, Affordance()), (1, Safety(hard=True)), (0.5, Cost()), (1, GoalProgress()),
        (1, NoRevisit())]


@pytest.fixture(scope="module")
def random_planner(gpt2_bpe, bpe_tokenizer):
    """A random tiny GPT-2: whatever it writes comes from the grounding functions."""
    return Planner(gpt2_bpe, bpe_tokenizer, DroneNav("office"))


@pytest.mark.parametrize("beam_width", [1, 3])
def test_hard_safety_makes_random_lm_plans_satisfy(random_planner, beam_width):
    for task in generate_tasks("drone_nav", 2, seed=1):
        p = random_planner.with_domain(task.domain)
        plan = grounded_plan(p, task.instruction, task.ltl, task.initial_state,
                             groundings=[(1, Affordance(-math.inf)), (1, Safety(hard=True))],
                             beam_width=beam_width)
        assert plan.satisfied and plan.valid and plan.stats["stop"] == "eos"
        assert len(plan.steps) <= p.max_steps


def test_functions_see_the_executed_state(random_planner):
    seen = []

    def record(ctx, step):
        seen.append((ctx.steps, ctx.state))
        return 0.0

    plan = grounded_plan(random_planner, "fly to the lab.", "F(lab)", "lobby",
                         groundings=[(1, Safety(hard=True)), (1, record)])
    run = random_planner.domain.execute("lobby", plan.steps)
    for steps, state in seen:
        assert state == run.states[len(steps)]
    assert {len(s) for s, _ in seen} == set(range(len(plan.steps) + 1))


def test_a_forbidding_function_is_obeyed(random_planner):
    def no_corridor(ctx, step):
        return -math.inf if step == "fly_to(corridor_1)" else 0.0

    plan = grounded_plan(random_planner, "fly to the cafe.", "F(cafe)", "lobby",
                         groundings=[(1, Safety(hard=True)), (1, no_corridor)], top_k=5)
    assert plan.satisfied and "fly_to(corridor_1)" not in plan.steps


def test_grounding_raises_shipped_lm_efficiency():
    base = Planner.from_default("drone_nav")
    hard, full = [], []
    for task in generate_tasks("drone_nav", 6, seed=0):
        p = base.with_domain(task.domain)
        for groundings, out in (([(1, Safety(hard=True))], hard), (FULL, full)):
            plan = grounded_plan(p, task.instruction, task.ltl, task.initial_state,
                                 groundings=groundings, beam_width=4)
            c = check_plan(task.domain, plan.steps, task.ltl, task.initial_state)
            assert c.safe
            out.append(c.efficiency)
    assert sum(full) / len(full) >= 0.8
    assert sum(full) >= sum(hard)


def test_features_and_heuristics():
    d = DroneNav("office")
    assert step_cost(d, "corridor_1", "fly_to(stairs_1)") == 1
    assert step_cost(d, "stairs_1", "fly_to(stairs_2)") == 2
    assert goal_distance(d, "lobby", "lobby") == 0
    assert goal_distance(d, "lobby", "cafe") == 2  # via reception
    with pytest.raises(ValueError, match="unknown atom"):
        goal_distance(d, "lobby", "attic")
    assert positive_atoms(LTLf("(!b U a) & F(b) & G(!c)")) == ["a", "b"]  # sorted


@pytest.mark.parametrize("kwargs, err, match", [
    ({"groundings": [(-1, Cost())]}, ValueError, "weight"),
    ({"groundings": [(1, "cost")]}, TypeError, "pair"),
    ({"groundings": Cost()}, TypeError, "list"),
    ({"top_k": 0}, ValueError, "top_k"),
    ({"beam_width": 0}, ValueError, "beam_width"),
    ({"groundings": [(1, lambda ctx, step: 1.0)]}, ValueError, "log-score"),
])
def test_bad_arguments(random_planner, kwargs, err, match):
    with pytest.raises(err, match=match):
        grounded_plan(random_planner, "fly to the lab.", "F(lab)", "lobby", **kwargs)


def test_bad_penalty_and_state(random_planner):
    with pytest.raises(ValueError, match="penalty"):
        Affordance(penalty=1.0)
    with pytest.raises(ValueError, match="unknown room"):
        grounded_plan(random_planner, "fly to the lab.", "F(lab)", "attic")
