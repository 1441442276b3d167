"""How the closed loop's planner writes steps, and how the robot waits while it thinks.

The residual spec, the grounding and the planner modes; :func:`hold` is latency-aware mode's
wait while the planner plans.

Usage: ``plan_steps(planner, "grounded", task, RearrangeDomain(), state, trace)``

Used by :mod:`experiments.eval_loop`; see its docstring for the loop and the planner modes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def residual_spec(formula: str, trace: list[frozenset[str]]) -> Any:
    """What is left of ``formula`` once ``trace`` (all but its last state) has happened.

    LTLf progression over the executed trace, stutter-compressed (the planner's steps are
    coarser than simulator steps; the task formulas have no ``X``): a plan from the current
    state satisfies the result iff the whole execution satisfies ``formula``. Replanning
    without it would forget, e.g., that an ordered block was already placed and later knocked
    out again.
    """
    from planners.ltl import LTLf, progress

    spec = LTLf(formula)
    atoms = spec.atoms
    letters = [frozenset(a for a in s if a in atoms) for s in trace]
    letters = [x for i, x in enumerate(letters) if i == 0 or x != letters[i - 1]]
    for letter in letters[:-1]:
        spec, _ = progress(spec, letter)
    return spec


class GoalPlacements:
    """A grounding function for rearrangement: prefer steps that put a wanted block in place.

    The domain-specific preference a user writes (the protocol of :mod:`planners.grounding`):
    ``log G`` is 0 for a step that makes one of the spec's still-missing positive atoms true
    and keeps the others, -1 for a neutral step, lower for one that undoes a placement; ending
    the plan costs 1 per missing atom.
    """

    def __call__(self, ctx: Any, step: str | None) -> float:
        """Score ``step`` (``None``: end the plan) in the plan context ``ctx``."""
        from envs.symbolic.base import InvalidStepError
        from planners.grounding import positive_atoms

        wanted = set(positive_atoms(ctx.ltl)) if ctx.ltl is not None else set()
        have = ctx.domain.label(ctx.state) & wanted
        if step is None:
            return -float(len(wanted - have))
        try:
            after = ctx.domain.label(ctx.domain.apply(ctx.state, step)) & wanted
        except InvalidStepError:
            return 0.0
        return min(0.0, float(len(after - have) - len(have - after)) - 1.0)


def plan_steps(planner: Any, mode: str, task: Any, domain: Any, state: Any,
               trace: list[frozenset[str]] | None = None) -> list[str]:
    """The planner's steps from ``state`` after ``trace`` (modes: see the module docstring).

    Returns an empty list when no plan can satisfy what is left of the spec (the execution
    already broke it).
    """
    from planners import UnsatisfiableSpecError

    if mode == "oracle":
        where = dict(state)
        return [f"put({b},{z})" for b, z in task.placements if where[b] != z]
    constrained = mode in ("ltl", "grounded")
    spec = residual_spec(task.formula, trace or [domain.label(state)]) if constrained else None
    try:
        if mode == "grounded":
            from planners.grounded import grounded_plan
            from planners.grounding import Affordance, Cost, NoRevisit, Safety

            plan = grounded_plan(planner, task.instruction, ltl=spec, state=state, beam_width=4,
                                 groundings=[(1, Affordance()), (1, Safety(hard=True)),
                                             (0.5, Cost()), (1, GoalPlacements()),
                                             (1, NoRevisit())])
        else:
            plan = planner.plan(task.instruction, ltl=spec, state=state, constrained=constrained)
    except UnsatisfiableSpecError:
        return []
    return list(plan.steps)


def hold(env: Any, seconds: float, obs: dict[str, Any], info: dict[str, Any], trace: list,
         result: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Hold the robot still for ``seconds`` of simulated time (the planner is thinking).

    Returns the last observation and info (``obs``, ``info`` when no step was needed), and
    whether the episode ended meanwhile.
    """
    n = int(np.ceil(seconds / env.unwrapped.control_dt))
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    action[-1] = result.last_grip
    for _ in range(n):
        obs, _, terminated, truncated, info = env.step(action)
        trace.append(frozenset(info["atoms"]))
        result.wait_steps += 1
        if terminated or truncated:
            return obs, info, True
    return obs, info, False
