"""Closed-loop grounding probe: does a VLA model steer the gripper to the named block?

Usage: ``target_heading(model, gym.make("robodecode/TabletopPickPlace-v0"), range(100, 140))``

Lives in ``experiments`` because it drives the tabletop env and reads its simulator state
(``vla`` imports ``envs`` only for the dataset reader).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def target_heading(model: Any, env: Any, seeds: Sequence[int], steps: int = 16,
                   actions_per_chunk: int = 4) -> dict[str, Any]:
    """Closed-loop grounding check: is the gripper nearest the named block after ``steps``?

    Each episode of a tabletop env (``robodecode/Tabletop*``) is run from ``reset(seed)`` with
    the model in the loop (``actions_per_chunk`` actions of each chunk executed), then the xy
    distance from the gripper to every block is read from the simulator (privileged). A policy
    that ignores the instruction is nearest the named block in about 1/4 of the episodes (four
    blocks); the scripted expert reaches 20/20 at 16 steps on seeds 100-119.

    Args:
        model: The policy (any head; the decoder is the head's default).
        env: A gymnasium tabletop env whose ``unwrapped`` has ``grip_pos``, ``block_pos`` and
            ``task_spec.block``.
        seeds: Episode seeds.
        steps: Control steps before measuring.
        actions_per_chunk: Actions executed per predicted chunk.

    Returns:
        ``nearest_is_target`` (fraction), ``mean_d_target`` and ``mean_d_others`` (m), rows.

    Raises:
        ValueError: If ``seeds`` is empty or ``steps`` / ``actions_per_chunk`` is not positive.
    """
    import numpy as np

    from envs.tabletop.instructions import BLOCK_COLOURS

    if not seeds:
        raise ValueError("seeds must name at least one episode")
    if steps <= 0 or actions_per_chunk <= 0:
        raise ValueError(f"steps and actions_per_chunk must be positive, got {steps}, "
                         f"{actions_per_chunk}")
    rows = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        u = env.unwrapped
        t, done = 0, False
        while t < steps and not done:
            chunk, _ = model.predict_chunk({k: obs[k] for k in ("image", "state", "instruction")})
            for act in chunk[0][:actions_per_chunk]:
                obs, _, term, trunc, _ = env.step(act)
                t += 1
                done = bool(term or trunc)
                if done or t >= steps:
                    break
        grip = np.asarray(u.grip_pos)[:2]
        dist = {c: float(np.linalg.norm(np.asarray(u.block_pos(c))[:2] - grip))
                for c in BLOCK_COLOURS}
        target = u.task_spec.block
        others = [d for c, d in dist.items() if c != target]
        rows.append({"seed": int(seed), "target": target, "d_target": dist[target],
                     "d_others_mean": float(np.mean(others)),
                     "nearest_is_target": dist[target] < min(others)})
    return {"nearest_is_target": float(np.mean([r["nearest_is_target"] for r in rows])),
            "mean_d_target": float(np.mean([r["d_target"] for r in rows])),
            "mean_d_others": float(np.mean([r["d_others_mean"] for r in rows])),
            "steps": steps, "rows": rows}
