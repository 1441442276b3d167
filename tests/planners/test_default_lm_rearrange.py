"""The shipped ``tabletop_rearrange`` planner LM writes mostly valid ``put`` plans unconstrained."""

from envs.symbolic import generate_tasks
from planners import Planner
from planners.check import check_plan, shortest_plan


def test_shipped_rearrange_lm_writes_valid_put_steps_unconstrained():
    planner = Planner.from_default("tabletop_rearrange", max_steps=6)
    tasks = generate_tasks("tabletop_rearrange", 8, seed=0, split="train")
    valid = succeeded = 0
    for task in tasks:
        plan = planner.plan(task.instruction, state=task.initial_state, constrained=False)
        assert all(step.startswith("put(") for step in plan.steps), plan.steps
        c = check_plan(task.domain, plan.steps, task.ltl, task.initial_state, task.goal_ltl)
        valid += c.valid
        succeeded += c.success
    assert valid >= 6 and succeeded >= 5, (valid, succeeded)


def test_constrained_plans_with_the_shipped_rearrange_lm_are_safe_and_short():
    planner = Planner.from_default("tabletop_rearrange", max_steps=6)
    tasks = generate_tasks("tabletop_rearrange", 8, seed=1, split="train")
    lengths = optimal = 0
    for task in tasks:
        plan = planner.plan(task.instruction, task.ltl, task.initial_state)
        assert plan.valid and plan.satisfied, (task.instruction, plan.steps)
        lengths += len(plan.steps)
        optimal += len(shortest_plan(task.domain, task.ltl, task.initial_state))
    assert lengths <= 1.25 * optimal, (lengths, optimal)
