import pytest

from envs.symbolic import BlocksWorld, DroneNav, generate_tasks
from planners.check import (
    ProductGraph,
    UnknownAtomError,
    check_plan,
    shortest_plan,
    spec_dfa,
)
from planners.ltl import LTLf


def test_check_plan_verdicts():
    d = DroneNav("office")
    spec, goal = "F(cafe) & G(!reception)", "F(cafe)"
    through = ["fly_to(reception)", "fly_to(cafe)"]
    around = ["fly_to(corridor_1)", "fly_to(cafe)"]
    detour = ["fly_to(corridor_1)", "fly_to(mail_room)", "fly_to(corridor_1)", "fly_to(cafe)"]
    c = check_plan(d, through, spec, "lobby", goal)
    assert (c.valid, c.safe, c.success, c.efficiency) == (True, False, True, None)
    c = check_plan(d, around, spec, "lobby", goal)
    assert (c.valid, c.safe, c.success, c.efficiency) == (True, True, True, 1.0)
    assert check_plan(d, detour, spec, "lobby", goal).efficiency == pytest.approx(0.5)
    c = check_plan(d, ["fly_to(lab)"], spec, "lobby", goal)
    assert (c.valid, c.safe, c.success, c.failed_index) == (False, False, False, 0)
    # the trace includes s0: starting in the avoided room already violates G(!reception)
    assert not check_plan(d, ["fly_to(cafe)"], spec, "reception", goal).safe


def test_shortest_plan_matches_product_graph_and_satisfies():
    for task in generate_tasks("drone_nav", 15, seed=2) + generate_tasks("blocks_world", 8):
        plan = shortest_plan(task.domain, task.ltl, task.initial_state)
        graph = ProductGraph(task.domain, spec_dfa(task.domain, task.ltl), task.initial_state)
        assert len(plan) == graph.dist[graph.root] == len(graph.shortest_plan())
        run = task.domain.execute(task.initial_state, plan)
        assert run.valid and LTLf(task.ltl).accepts(task.domain.trace(run.states))


def test_order_constraint_in_blocks():
    d = BlocksWorld(("red", "blue", "green"))
    s = d.make_state({"left": ["red"], "center": ["blue"], "right": ["green"]})
    plan = shortest_plan(d, "F(red_on_blue) & (!holding_red U holding_green)", s)
    assert plan[0] == "pick(green)" and plan[-1] == "place(red, blue)" and len(plan) == 4


def test_unknown_atoms_list_domain_atoms():
    with pytest.raises(UnknownAtomError, match="attic.*atoms are:.*lobby"):
        spec_dfa(DroneNav("office"), "F(attic)")
    assert shortest_plan(DroneNav("office"), "F(lab) & G(!corridor_3)", "lobby") is None
