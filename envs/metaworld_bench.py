"""Expert success and speed of the MetaWorld adapters (for ``robodecode bench envs``).

Usage: ``MUJOCO_GL=egl python -m envs.metaworld_bench --tasks reach-v3 pick-place-v3 --seeds 50``

Both functions build the registered id (``envs.metaworld_tasks.env_id``) with
``gymnasium.make``, so they measure exactly what a policy sees: the time limit of the id, the
rendered image in every observation and MetaWorld's scripted expert through
``envs.make_expert``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np


def metaworld_expert_success(
    task: str,
    seeds: Iterable[int],
    *,
    noise: float = 0.0,
    split: str = "train",
    images: bool = False,
) -> dict[str, Any]:
    """Run MetaWorld's scripted expert on one seed per episode and count successes.

    Args:
        task: MetaWorld env name, e.g. ``"pick-place-v3"`` (one of ``TASKS``).
        seeds: Episode seeds passed to ``reset(seed=...)``.
        noise: Action-noise standard deviation of the expert (its noise RNG is seeded too).
        split: Instruction split of the env.
        images: Render the 128x128 image every step, as demo collection does (the expert
            does not look at it, so success is the same; only the speed changes).

    Returns:
        ``task``, ``env_id``, ``episodes``, ``successes``, ``success_rate``, ``failed_seeds``,
        ``mean_steps`` (over successful episodes), ``max_episode_steps``, ``env_steps``,
        ``images``, ``seconds`` and ``steps_per_s`` (env steps including the expert, per
        second).

    Raises:
        ValueError: If ``seeds`` is empty or an argument is invalid.
    """
    import gymnasium

    import envs
    from envs.metaworld_tasks import env_id

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    env = gymnasium.make(env_id(task), split=split, images=images)
    successes, failed, steps_ok, total_steps = 0, [], [], 0
    start = time.perf_counter()
    try:
        for seed in seeds:
            expert = envs.make_expert(env, noise=noise, seed=seed)
            obs, _ = env.reset(seed=seed)
            expert.reset()
            steps, done, info = 0, False, {}
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                steps += 1
                done = terminated or truncated
            total_steps += steps
            if info.get("is_success", False):
                successes += 1
                steps_ok.append(steps)
            else:
                failed.append(seed)
    finally:
        env.close()
    seconds = time.perf_counter() - start
    return {
        "task": task,
        "env_id": env_id(task),
        "episodes": len(seeds),
        "successes": successes,
        "success_rate": successes / len(seeds),
        "failed_seeds": failed,
        "mean_steps": float(np.mean(steps_ok)) if steps_ok else None,
        "max_episode_steps": env.spec.max_episode_steps,
        "env_steps": total_steps,
        "images": images,
        "seconds": seconds,
        "steps_per_s": total_steps / seconds,
    }


def metaworld_step_rate(task: str, steps: int = 300, *, seed: int = 0) -> dict[str, Any]:
    """Measure control steps per second with and without rendering, and ms per frame.

    The expert drives the arm (resetting when an episode ends), so contacts happen as in use;
    only ``env.step`` is timed. "Without rendering" is the env made with ``images=False``.

    Args:
        task: MetaWorld env name (one of ``TASKS``).
        steps: Control steps timed in each mode.
        seed: Seed of the first episode.

    Returns:
        ``task``, ``steps``, ``steps_per_s_no_render``, ``steps_per_s_render``,
        ``ms_per_frame`` (one main-camera frame) and ``image_size``.

    Raises:
        ValueError: If ``steps`` < 1.
    """
    import gymnasium

    import envs
    from envs.metaworld_tasks import env_id

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rates = {}
    for images in (False, True):
        env = gymnasium.make(env_id(task), images=images)
        expert = envs.make_expert(env)
        try:
            obs, _ = env.reset(seed=seed)
            elapsed = 0.0
            for i in range(steps):
                action = expert.act(obs)
                t0 = time.perf_counter()
                obs, _, terminated, truncated, _ = env.step(action)
                elapsed += time.perf_counter() - t0
                if terminated or truncated:
                    obs, _ = env.reset(seed=seed + i + 1)
            rates[images] = steps / elapsed
            if images:
                base, frames = env.unwrapped, 50
                t0 = time.perf_counter()
                for _ in range(frames):
                    base.render_camera("main")
                ms_per_frame = (time.perf_counter() - t0) * 1000.0 / frames
        finally:
            env.close()
    return {
        "task": task,
        "steps": steps,
        "steps_per_s_no_render": rates[False],
        "steps_per_s_render": rates[True],
        "ms_per_frame": ms_per_frame,
        "image_size": base.image_size,
    }


def main(argv: list[str] | None = None) -> None:
    """Print expert success and speed per task as JSON lines."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; before mujoco is imported
    from envs.metaworld_tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="MetaWorld env names")
    parser.add_argument("--seeds", type=int, default=50, help="episodes (seeds 0..N-1) per task")
    parser.add_argument("--noise", type=float, default=0.0, help="expert action-noise std")
    parser.add_argument("--images", action="store_true", help="render images in success runs")
    parser.add_argument("--speed-steps", type=int, default=300, help="steps per speed mode")
    args = parser.parse_args(argv)
    for task in args.tasks:
        row = metaworld_expert_success(
            task, range(args.seeds), noise=args.noise, images=args.images
        )
        if args.speed_steps > 0:
            row.update(metaworld_step_rate(task, args.speed_steps))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
