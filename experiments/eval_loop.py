"""Closed loop: an LTL-constrained planner writes the steps, a skill executes them in MuJoCo.

Usage: robodecode eval-loop --tasks 20 --planner ltl --skill expert [--out DIR]

One task of ``robodecode/TabletopRearrange-v0`` (e.g. "put the red block in the purple zone
before the blue block goes to the white zone, and never put anything in the orange zone"):

1. the planner plans ``put(block,zone)`` steps from the symbolic state read off the simulator
   (:class:`~envs.tabletop.rearrange_domain.RearrangeDomain`): ``ltl`` decodes under the task's
   LTLf formula (plans satisfy it by construction), ``grounded`` adds soft grounding
   (:func:`planners.grounded.grounded_plan`: affordance, hard safety, cost, no revisits and
   :class:`GoalPlacements`; beam search over steps) for short plans, ``free`` lets the LM
   write the plan unconstrained (the baseline), ``oracle`` takes the task's own steps (the
   skill ceiling);
2. a skill executes each step as its one-step instruction ("put the red block in the purple
   zone"): the scripted expert (the planner ceiling) or a VLA policy through the
   :class:`~policies.broker.ChunkBroker`, until the block rests in the zone with the gripper
   clear of it, or a step time limit passes;
3. after each step the symbolic state is read again; if it is not what the plan expected the
   planner replans from it (at most ``max_replans`` times);
4. the spec is checked on the *executed* trace (the atoms of every simulator step) with the
   LTLf engine, and the env reports success (every placement holds, nothing broken).

Step success is judged on privileged simulator state. The planner LM is the shipped
``tabletop_rearrange`` GPT-2 (``planners/default_lm/tabletop_rearrange``, trained on this
domain's generated tasks); under ``ltl`` the constraint, not the LM, guarantees the spec.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from experiments.eval_loop_planning import GoalPlacements, hold, plan_steps, residual_spec
from experiments.evaluate import parse_latency
from experiments.provenance import machine

__all__ = ["ExpertSkill", "GoalPlacements", "LoopResult", "PolicySkill", "default_planner",
           "make_env", "plan_steps", "residual_spec", "run_task", "summarize"]

STEP_LIMIT = 160
"""Env steps a skill gets per plan step (one pick-and-place takes the expert ~50)."""
EPISODE_LIMIT = 900
PLANNERS = ("grounded", "ltl", "free", "oracle")


@dataclass
class LoopResult:
    """One task's outcome.

    Attributes:
        seed: Env seed of the task.
        instruction: The task's instruction.
        formula: Its LTLf formula.
        success: The env's success (every placement holds, no condition broken, gripper clear).
        spec_satisfied: The LTLf engine's verdict on the executed trace.
        violation: The env's first broken condition, or ``None``.
        plans: Every plan the planner wrote (the first, then each replan).
        steps: The executed steps with whether each reached its expected state.
        replans: Plans written after the first.
        env_steps: Simulator steps taken.
        seconds: Wall time (planning and execution).
        planner_seconds: Wall time spent planning.
        wait_steps: Latency-aware mode: steps the robot held still while the planner thought.
        last_grip: The gripper's last command (what a hold keeps; open at the start).
    """

    seed: int
    instruction: str
    formula: str
    success: bool
    spec_satisfied: bool
    violation: str | None
    plans: list[list[str]] = field(default_factory=list)
    steps: list[tuple[str, bool]] = field(default_factory=list)
    replans: int = 0
    wait_steps: int = 0
    last_grip: float = 1.0  # the gripper's last command (open at the start)
    env_steps: int = 0
    seconds: float = 0.0
    planner_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class ExpertSkill:
    """The scripted pick-and-place expert, aimed at one ``(block, zone)`` step at a time."""

    def __init__(self, env: Any, seed: int = 0) -> None:
        import envs

        self.expert = envs.make_expert(env, seed=seed)

    def start(self, block: str, zone: str, instruction: str, seed: int) -> None:
        """Aim at a new step."""
        self.expert.reset()
        self.expert.target = (block, zone)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The next action."""
        return self.expert.act(obs)


class PolicySkill:
    """A chunk policy (e.g. a ``VLAPolicy``) told the step's one-step instruction."""

    def __init__(self, policy: Any, k: int = 8, latency: str | float | None = None,
                 control_dt: float | None = None, rtc: bool = False) -> None:
        from policies.broker import ChunkBroker

        self.broker = ChunkBroker(policy, k=k, latency=latency, control_dt=control_dt, rtc=rtc)
        self.instruction = ""

    def start(self, block: str, zone: str, instruction: str, seed: int) -> None:
        """Aim at a new step: a fresh chunk timeline, the step's instruction."""
        self.broker.reset(seed=seed)
        self.instruction = instruction

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The next action for ``obs`` with the step's instruction in place of the task's."""
        return self.broker.act({**obs, "instruction": self.instruction})


def run_task(env: Any, seed: int, planner: Any, skill: Any, *, mode: str = "ltl",
             pattern: str | None = None, max_replans: int = 2,
             step_limit: int = STEP_LIMIT, on_step: Any = None,
             planner_latency: bool = False) -> LoopResult:
    """Plan, execute and check one task (see the module docstring).

    ``on_step(step)``, if given, is called after every simulator step with the plan step being
    executed (e.g. to record a frame labelled with it). With ``planner_latency`` the planner's
    thinking costs simulated time: after each plan (the first and every replan) the robot holds
    still (no motion, gripper as last commanded) for ceil(planning time / control period)
    steps, recorded in the trace and counted against the episode's step limit
    (``LoopResult.wait_steps``). A VLA skill's own latency lives in its broker
    (:class:`PolicySkill`).

    Raises:
        ValueError: If ``mode`` is not one of :data:`PLANNERS`.
    """
    from envs.symbolic.base import InvalidStateError, InvalidStepError
    from envs.tabletop.rearrange_domain import RearrangeDomain
    from planners.ltl import LTLf

    if mode not in PLANNERS:
        raise ValueError(f"mode must be one of {PLANNERS}, got {mode!r}")
    tic = time.perf_counter()
    domain = RearrangeDomain()
    obs, info = env.reset(seed=seed, options={"pattern": pattern} if pattern else None)
    base = env.unwrapped
    task = base.rearrange_task
    trace = [frozenset(info["atoms"])]
    state = domain.observe(env)
    result = LoopResult(seed, task.instruction, task.formula, False, False, None)
    done = False
    while not done:
        t0 = time.perf_counter()
        steps = plan_steps(planner, mode, task, domain, state, trace)
        thought = time.perf_counter() - t0
        result.planner_seconds += thought
        result.plans.append(steps)
        if planner_latency:
            obs, info, stopped = hold(env, thought, obs, info, trace, result)
            if stopped:
                break
        if not steps:
            break
        for step in steps:
            try:
                expected = domain.apply(state, step)
            except InvalidStepError:  # only an unconstrained plan can hold such a step
                result.steps.append((step, False))
                done = True
                break
            block, zone = domain.target(step)
            skill.start(block, zone, domain.instruction(step), seed + len(result.steps))
            for _ in range(step_limit):
                action = skill.act(obs)
                result.last_grip = float(action[-1])
                obs, _, terminated, truncated, info = env.step(action)
                trace.append(frozenset(info["atoms"]))
                if on_step is not None:
                    on_step(step)
                if terminated or truncated or (base.in_zone(block, zone)
                                               and not base.touches_gripper(block)):
                    break
            done = terminated or truncated
            try:
                state_now = domain.observe(env)
            except InvalidStateError:  # two blocks ended up in one zone
                result.steps.append((step, False))
                done = True
                break
            ok = state_now == expected
            result.steps.append((step, ok))
            state = state_now
            if done:
                break
            if not ok:
                if result.replans >= max_replans:
                    done = True
                else:
                    result.replans += 1
                break
        else:
            done = True  # the plan ran out without the env declaring success
    result.success = bool(info["is_success"])
    result.violation = info["violation"]
    result.spec_satisfied = LTLf(task.formula).accepts([set(s) for s in trace])
    result.env_steps = base.elapsed_steps
    result.seconds = time.perf_counter() - tic
    return result


def make_env(split: str = "train", images: bool = True, render_mode: str | None = None) -> Any:
    """A ``TabletopRearrange-v0`` env with room for replans (``EPISODE_LIMIT`` steps)."""
    import gymnasium as gym

    import envs
    from envs.tabletop import REARRANGE_ID

    assert envs  # registers the ids
    return gym.make(REARRANGE_ID, split=split, images=images, max_episode_steps=EPISODE_LIMIT,
                    render_mode=render_mode)


def default_planner() -> Any:
    """The shipped ``tabletop_rearrange`` planner LM, planning in the tabletop's domain."""
    import envs.symbolic  # first: imported from rearrange_domain it meets a partial module
    from envs.tabletop.rearrange_domain import RearrangeDomain
    from planners import Planner

    assert envs.symbolic

    return Planner.from_default("tabletop_rearrange", domain=RearrangeDomain(), max_steps=6)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates with 95% Wilson intervals and means over finished tasks."""
    from experiments.stats import wilson_interval

    n = len(results)
    out: dict[str, Any] = {"tasks": n}
    for key, pick in (("success", lambda r: r["success"]),
                      ("spec_satisfied", lambda r: r["spec_satisfied"]),
                      ("violation", lambda r: r["violation"] is not None)):
        k = sum(bool(pick(r)) for r in results)
        low, high = wilson_interval(k, n) if n else (0.0, 1.0)
        out[key] = {"pc": 100 * k / max(n, 1), "k": k, "ci95": [100 * low, 100 * high]}
    steps = [ok for r in results for _, ok in r["steps"]]
    out["step_success_pc"] = 100 * sum(steps) / max(len(steps), 1)
    for key in ("replans", "env_steps", "seconds", "planner_seconds", "wait_steps"):
        out[f"mean_{key}"] = float(np.mean([r.get(key, 0) for r in results])) if n else None
    out["mean_executed_steps"] = float(np.mean([len(r["steps"]) for r in results])) if n else None
    return out


def condition_summary(cond: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json`` of a ``LoopCondition`` (without provenance): what ran, then the rates."""
    return {"planner": cond.planner, "skill": cond.skill, "decoder": cond.decoder or None,
            "split": cond.split, "latency": getattr(cond, "latency", "") or None,
            "rtc": bool(getattr(cond, "rtc", False)), "k": getattr(cond, "k", 8),
            **summarize(sorted(records, key=lambda r: r["seed"]))}


_WORKER: dict[Any, Any] = {}
"""This process's envs, skills and planner LM, built on first use."""


def init_worker(threads: int = 1) -> None:
    """Per-process setup of a loop worker: headless MuJoCo, ``threads`` torch threads."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import torch

    torch.set_num_threads(threads)
    _WORKER.clear()


def run_condition_task(condition: dict[str, str], seed: int) -> dict[str, Any]:
    """Run task ``seed`` of ``condition`` (a ``LoopCondition.key()``); returns its record.

    The env (one per split and rendering), the skill (one per checkpoint and decoder) and the
    planner LM are built once per process and reused; a VLA skill is reseeded at every step.
    """
    split, planner, skill = condition["split"], condition["planner"], condition["skill"]
    images = skill != "expert"
    if ("env", split, images) not in _WORKER:
        _WORKER["env", split, images] = make_env(split=split, images=images)
    env = _WORKER["env", split, images]
    latency = parse_latency(condition.get("latency") or None)
    key = ("skill", split, skill, condition["decoder"], latency, condition.get("rtc"),
           condition.get("k"))
    if key not in _WORKER:
        if skill == "expert":
            _WORKER[key] = ExpertSkill(env, 0)
        else:
            from policies.vla_policy import VLAPolicy

            _WORKER[key] = PolicySkill(
                VLAPolicy(skill, condition["decoder"]), k=int(condition.get("k", 8)),
                latency=latency,
                control_dt=env.unwrapped.control_dt if latency is not None else None,
                rtc=condition.get("rtc") == "True")
    if planner != "oracle" and "planner" not in _WORKER:
        _WORKER["planner"] = default_planner()
    lm = _WORKER.get("planner") if planner != "oracle" else None
    record = run_task(env, seed, lm, _WORKER[key], mode=planner,
                      planner_latency=latency is not None).to_dict()
    return {**record, "pid": os.getpid(), "machine": machine()}


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode eval-loop``."""

    @app.command("eval-loop")
    def eval_loop(
        tasks: Annotated[int, typer.Option(min=1, help="Tasks (task i uses seed S+i).")] = 20,
        seed: Annotated[int, typer.Option(help="First env seed S.")] = 0,
        split: Annotated[str, typer.Option(help="train or heldout instructions.")] = "train",
        planner: Annotated[str, typer.Option(
            help="grounded (constrained + soft grounding), ltl (constrained), free "
                 "(unconstrained LM), oracle (the task's steps).")] = "ltl",
        skill: Annotated[str, typer.Option(
            help="expert, or a VLA checkpoint set / model folder.")] = "expert",
        decoder: Annotated[str, typer.Option(help="Decoder spec of a VLA skill.")] = "",
        out: Annotated[Path, typer.Option(help="Output folder (episodes.jsonl, summary.json).")]
            = Path("scratch/eval_loop"),
        resume: Annotated[bool, typer.Option(help="Skip tasks already in OUT.")] = False,
        workers: Annotated[int, typer.Option(
            min=1, help="Spawned worker processes (1: this process).")] = 1,
        threads: Annotated[int, typer.Option(min=1, help="Torch threads per worker.")] = 1,
        latency: Annotated[str | None, typer.Option(
            help="Latency-aware mode: 'measured' or ms of inference delay for a VLA skill (the "
                 "robot keeps executing its last chunk meanwhile); the planner's own time "
                 "holds the robot still.")] = None,
        rtc: Annotated[bool, typer.Option(
            "--rtc", help="With --latency: real-time chunking for the VLA skill.")] = False,
        k: Annotated[int, typer.Option(min=1, help="Actions a VLA skill executes per chunk.")]
            = 8,
    ) -> None:
        """Plans by an LTL-constrained planner executed by a skill in TabletopRearrange-v0."""
        import json

        from envs.files import write_json_atomic
        from experiments.eval_loop_workers import LoopCondition, run_conditions
        from experiments.provenance import provenance

        if planner not in PLANNERS:
            raise typer.BadParameter(f"--planner must be one of {PLANNERS}, got {planner!r}")
        if (out / "episodes.jsonl").is_file() and not resume:
            raise typer.BadParameter(f"{out / 'episodes.jsonl'} exists: pass --resume or "
                                     "choose another --out")
        if skill != "expert":
            from policies.vla_policy import VLAPolicy

            try:  # fail here, not in a worker, on a bad checkpoint or decoder
                VLAPolicy(skill, decoder or "oft")
            except ValueError as err:
                raise typer.BadParameter(str(err)) from None
        try:
            if parse_latency(latency) is None and rtc:
                raise ValueError("--rtc needs --latency: without one nothing executes while a "
                                 "chunk decodes")
            cond = LoopCondition(out, split, planner, skill,
                                 (decoder or "oft") if skill != "expert" else "",
                                 latency=str(latency or ""), rtc=rtc, k=k)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        done = run_conditions([cond], tasks=tasks, seed=seed, workers=workers,
                              init=init_worker, job=run_condition_task, threads=threads)[out]
        summary = {**condition_summary(cond, done), "provenance": provenance()}
        write_json_atomic(out / "summary.json", summary)
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "provenance"},
                              indent=2))
