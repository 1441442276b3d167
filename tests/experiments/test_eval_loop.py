"""The closed loop: planner steps executed by skills in TabletopRearrange-v0, checked on traces."""

import json

import pytest
from typer.testing import CliRunner

from envs.symbolic.base import InvalidStateError, InvalidStepError
from envs.tabletop.rearrange_domain import TABLE, RearrangeDomain
from experiments.cli import build_app
from experiments.eval_loop import (
    ExpertSkill,
    PolicySkill,
    default_planner,
    make_env,
    run_task,
    summarize,
)
from policies import VLAPolicy

SHIPPED = "experiments/checkpoints/TabletopPickPlace-v0/seed0"


def test_domain_rules_and_instruction_language():
    d = RearrangeDomain()
    s = d.initial()
    s1 = d.apply(s, "put(red,purple)")
    assert d.label(s1) == {"red_in_purple"} and dict(s1)["blue"] == TABLE
    with pytest.raises(InvalidStepError, match="already holds the red block"):
        d.apply(s1, "put(blue,purple)")
    with pytest.raises(InvalidStepError, match="steps look like"):
        d.apply(s, "pick(red)")
    with pytest.raises(InvalidStateError, match="two blocks in one zone"):
        d.validate_state((("blue", "white"), ("green", TABLE), ("red", "white"),
                          ("yellow", TABLE)))
    assert d.instruction("put(red,purple)") == "put the red block in the purple zone"
    assert len(d.states()) == 73 and d.atoms == {f"{b}_in_{z}" for b in d.blocks
                                                  for z in d.zones}


def test_ltl_plans_executed_by_the_expert_satisfy_the_spec_on_the_executed_trace():
    env, planner = make_env(images=False), default_planner()
    for seed in range(3):
        r = run_task(env, seed, planner, ExpertSkill(env, seed), mode="ltl")
        assert r.steps and all(step.startswith("put(") for step, _ in r.steps)
        if all(ok for _, ok in r.steps):  # every step succeeded: no violation is possible
            assert r.violation is None and r.spec_satisfied and r.success, r.to_dict()
    summary = summarize([r.to_dict()])
    assert summary["tasks"] == 1 and 0 <= summary["success"]["ci95"][0] <= 100


def test_a_vla_skill_runs_the_loop_end_to_end():
    env = make_env(images=True)
    skill = PolicySkill(VLAPolicy(SHIPPED, "oft"))
    r = run_task(env, 1, None, skill, mode="oracle", step_limit=12, max_replans=0)
    assert r.plans and r.steps and r.env_steps >= 12
    assert isinstance(r.spec_satisfied, bool)
    assert r.violation is None or isinstance(r.violation, str)


def test_eval_loop_cli_writes_resumable_results(tmp_path):
    runner = CliRunner()
    args = ["eval-loop", "--tasks", "2", "--planner", "oracle", "--out", str(tmp_path)]
    res = runner.invoke(build_app(), args)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tasks"] == 2 and summary["success"]["k"] == 2  # the expert's ceiling
    res = runner.invoke(build_app(), [*args[:2], "3", *args[3:], "--resume"])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["seed"] for x in lines) == [0, 1, 2]
    res = runner.invoke(build_app(), args)
    assert res.exit_code != 0 and "--resume" in res.output


def test_replanning_keeps_what_the_execution_already_did():
    from experiments.eval_loop import residual_spec
    from planners.ltl import LTLf

    formula = "F(red_in_white & blue_in_orange) & (!blue_in_orange U red_in_white)"
    # red went to white, blue to orange, then red was knocked out again: the order is done.
    trace = [frozenset(), frozenset({"red_in_white"}), frozenset({"red_in_white", "holding_blue"}),
             frozenset({"red_in_white", "blue_in_orange"}), frozenset({"blue_in_orange"})]
    rest = residual_spec(formula, trace)
    assert rest.accepts([{"blue_in_orange"}, {"blue_in_orange", "red_in_white"}])
    assert not LTLf(formula).accepts([{"blue_in_orange"}, {"blue_in_orange", "red_in_white"}])
    # a trace that already broke the order leaves nothing to satisfy (plans start at its end)
    broken = [frozenset(), frozenset({"blue_in_orange"}), frozenset({"blue_in_orange"})]
    assert not residual_spec(formula, broken).accepts(
        [{"blue_in_orange"}, {"blue_in_orange", "red_in_white"}])


def test_grounded_plans_are_short_and_keep_the_spec():
    env, planner = make_env(images=False), default_planner()
    for seed in (0, 3):  # seed 3: plain constrained decoding wanders (5 steps for 2)
        r = run_task(env, seed, planner, ExpertSkill(env, seed), mode="grounded")
        task = env.unwrapped.rearrange_task
        assert r.success and r.spec_satisfied and r.violation is None
        assert len(r.plans[0]) == len(task.placements), r.plans


def test_eval_loop_workers_match_one_process_and_resume(tmp_path):
    runner = CliRunner()
    base = ["eval-loop", "--tasks", "3", "--planner", "grounded"]
    res = runner.invoke(build_app(), [*base, "--out", str(tmp_path / "one")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(build_app(), [*base, "--workers", "2", "--out", str(tmp_path / "two")])
    assert res.exit_code == 0, res.output

    def records(name):
        lines = (tmp_path / name / "episodes.jsonl").read_text().splitlines()
        drop = ("seconds", "planner_seconds", "pid")
        return sorted(({k: v for k, v in json.loads(x).items() if k not in drop} for x in lines),
                      key=lambda r: r["seed"])

    assert records("one") == records("two") and len(records("two")) == 3
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["tasks"] == 3 and summary["planner"] == "grounded"


def test_run_conditions_keeps_folders_apart_and_honours_a_passed_deadline(tmp_path):
    from experiments.eval_loop import init_worker, run_condition_task
    from experiments.eval_loop_workers import LoopCondition, load_episodes, run_conditions

    conds = [LoopCondition(tmp_path / "a", "train", "oracle", "expert"),
             LoopCondition(tmp_path / "b", "heldout", "oracle", "expert")]
    kw = {"init": init_worker, "job": run_condition_task, "progress": False}
    assert run_conditions(conds, tasks=2, deadline_s=0, **kw) == {c.out: [] for c in conds}
    done = run_conditions(conds, tasks=2, **kw)
    assert [sorted(r["seed"] for r in done[c.out]) for c in conds] == [[0, 1], [0, 1]]
    assert done[conds[0].out][0]["instruction"] != done[conds[1].out][0]["instruction"]
    again = run_conditions(conds, tasks=2, **kw)  # nothing left to run: the same records
    assert again == {c.out: load_episodes(c.out) for c in conds}
    with pytest.raises(ValueError, match="distinct folders"):
        run_conditions([conds[0], conds[0]], tasks=1, **kw)
    with pytest.raises(ValueError, match="decoder"):
        LoopCondition(tmp_path / "c", "train", "oracle", SHIPPED)


def test_loop_videos_label_every_panel_with_its_step(tmp_path):
    from experiments.eval_loop_videos import write

    index = write([0], ["a:grounded:expert", "b:oracle:expert"], tmp_path)
    assert (tmp_path / "seed0.mp4").stat().st_size > 1000
    panels = index[0]["panels"]
    assert panels["a"]["success"] and panels["a"]["steps"] == panels["b"]["steps"]
    assert json.loads((tmp_path / "videos.json").read_text())["videos"][0]["seed"] == 0


def test_latency_aware_loop_holds_for_the_planner_and_delays_the_skill(tmp_path, monkeypatch):
    """Latency-aware mode: planning time holds the robot still, a VLA skill's chunks arrive late.

    The hold steps are in the trace (the spec is checked on what executed); the skill's broker
    records the delays.
    """
    import time

    import experiments.eval_loop as loop

    slow_plan = loop.plan_steps

    def plan_for_a_while(*args, **kwargs):
        time.sleep(0.1)  # 100 ms of thinking = 5 control steps at 50 Hz
        return slow_plan(*args, **kwargs)

    monkeypatch.setattr(loop, "plan_steps", plan_for_a_while)
    env = make_env(images=True)
    skill = PolicySkill(VLAPolicy(SHIPPED, "oft"), k=4, latency=60.0,
                        control_dt=env.unwrapped.control_dt)
    r = run_task(env, 1, None, skill, mode="oracle", step_limit=12, max_replans=0,
                 planner_latency=True)
    assert r.wait_steps >= 5 and r.env_steps >= r.wait_steps + 12
    assert any(c.delay_steps == 3 for c in skill.broker.chunk_stats)  # ceil(60 ms / 20 ms)
    plain = run_task(env, 1, None, PolicySkill(VLAPolicy(SHIPPED, "oft"), k=4), mode="oracle",
                     step_limit=12, max_replans=0)
    assert plain.wait_steps == 0
    res = CliRunner().invoke(build_app(), ["eval-loop", "--tasks", "1", "--planner", "oracle",
                                           "--latency", "fast", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "latency" in res.output
    res = CliRunner().invoke(build_app(), ["eval-loop", "--tasks", "1", "--planner", "oracle",
                                           "--rtc", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--rtc needs --latency" in res.output
    rtc_skill = PolicySkill(VLAPolicy(SHIPPED, "oft"), k=4, latency=60.0,
                            control_dt=env.unwrapped.control_dt, rtc=True)
    run_task(env, 1, None, rtc_skill, mode="oracle", step_limit=12, max_replans=0)
    assert any(c.frozen_steps == 3 for c in rtc_skill.broker.chunk_stats)
