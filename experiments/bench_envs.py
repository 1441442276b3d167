"""``robodecode bench envs``: speed of the tabletop envs and success of their scripted experts.

Usage: robodecode bench envs --episodes 100 --out scratch/bench/envs.json

For every tabletop id it measures control steps per second without images and with the
128x128 main camera rendered each step, the render time per frame, expert episodes per second
(state only, and with images as demo collection does) and the expert's success over seeds
0..N-1. Timings are wall-clock on a possibly shared CPU: read them next to each other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path("scratch/bench/envs.json")


def _random_steps(env, steps: int, seed: int) -> tuple[float, float]:
    """Step ``env`` with seeded random actions; return steps per wall second and per CPU second.

    CPU seconds (this process, all threads) are less sensitive to other jobs sharing the CPU.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    env.reset(seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def _expert_episodes(env, seeds, expert_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run the scripted expert once per seed; return successes, lengths and episodes/s."""
    from envs.experts import make_expert

    expert = make_expert(env, **expert_kwargs)
    successes, lengths = [], []
    start = time.perf_counter()
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        expert.reset()
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps, done = steps + 1, terminated or truncated
        successes.append(bool(info["is_success"]))
        lengths.append(steps)
    elapsed = time.perf_counter() - start
    return {"successes": successes, "lengths": lengths,
            "episodes_per_s": len(successes) / elapsed}


def bench_env(env_id: str, episodes: int = 100, steps: int = 1000,
              render_episodes: int = 10, seed: int = 0) -> dict[str, Any]:
    """Measure one tabletop id.

    Args:
        env_id: A registered tabletop id.
        episodes: Expert episodes (seeds ``seed .. seed+episodes-1``) for the success rate.
        steps: Random-action control steps per speed measurement.
        render_episodes: Expert episodes with images for the collection rate.
        seed: First seed.

    Returns:
        A JSON-serialisable record of the measurements.
    """
    import gymnasium as gym
    import numpy as np

    import envs  # noqa: F401  (registers the ids)

    fast = gym.make(env_id, images=False)
    imaged = gym.make(env_id)
    try:
        sps_state = _random_steps(fast, steps, seed)
        sps_image = _random_steps(imaged, steps, seed)
        base = imaged.unwrapped
        frames = max(steps // 4, 10)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(frames):
            base.render_camera("main")
        ms_frame = (time.perf_counter() - start) / frames * 1000
        cpu_ms_frame = (time.process_time() - cpu) / frames * 1000
        seeds = range(seed, seed + episodes)
        state_run = _expert_episodes(fast, seeds, {})
        image_run = _expert_episodes(imaged, range(seed, seed + render_episodes), {})
    finally:
        fast.close()
        imaged.close()
    succ = state_run["successes"]
    return {
        "env_id": env_id,
        "image_size": base.image_size,
        "control_dt_s": base.control_dt,
        "steps_per_s_no_render": sps_state[0],
        "steps_per_s_render": sps_image[0],
        "ms_per_frame": ms_frame,
        "steps_per_cpu_s_no_render": sps_state[1],
        "steps_per_cpu_s_render": sps_image[1],
        "cpu_ms_per_frame": cpu_ms_frame,
        "expert_episodes": len(succ),
        "expert_successes": int(sum(succ)),
        "expert_success_rate": float(np.mean(succ)),
        "expert_failed_seeds": [s for s, ok in zip(seeds, succ, strict=True) if not ok],
        "expert_mean_steps": float(np.mean(state_run["lengths"])),
        "expert_max_steps": int(max(state_run["lengths"])),
        "expert_episodes_per_s_no_render": state_run["episodes_per_s"],
        "expert_episodes_per_s_render": image_run["episodes_per_s"],
        "render_episodes": render_episodes,
    }


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench envs``."""

    @bench.command("envs")
    def bench_envs_command(
        out: Annotated[Path, typer.Option(help="Results JSON (with provenance).")] = DEFAULT_OUT,
        episodes: Annotated[int, typer.Option(
            help="Expert episodes per env for the success rate (100 for the headline).")] = 100,
        steps: Annotated[int, typer.Option(help="Control steps per speed measurement.")] = 1000,
        render_episodes: Annotated[int, typer.Option(
            help="Expert episodes with images, for the collection rate.")] = 10,
        env: Annotated[list[str] | None, typer.Option(
            help="Env id, tabletop or MetaWorld (repeatable; default: all tabletop).")] = None,
        seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    ) -> None:
        """Benchmark envs: steps/s, ms per frame, expert episodes/s and success (100 seeds).

        Prints a table and writes JSON with provenance (default scratch/bench/envs.json).

        Timings share the CPU with other jobs: compare rows of one run.

        The JSON also has rates per CPU second of this process (less disturbed by others).
        """
        from rich.console import Console
        from rich.table import Table

        from envs.metaworld_tasks import METAWORLD_IDS
        from envs.tabletop import TABLETOP_IDS
        from experiments.provenance import provenance, write_json_atomic

        for name, value in (("episodes", episodes), ("steps", steps),
                            ("render-episodes", render_episodes)):
            if value < 1:
                raise typer.BadParameter(f"must be >= 1, got {value}", param_hint=f"--{name}")
        ids = env or list(TABLETOP_IDS)
        known = [*TABLETOP_IDS, *METAWORLD_IDS]
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise typer.BadParameter(f"unknown ids {unknown}; known: {known}",
                                     param_hint="--env")
        rows = []
        for env_id in ids:
            rows.append(bench_env(env_id, episodes, steps, render_episodes, seed))
        table = Table(title=f"envs (expert success over {episodes} seeds)")
        for col in ("env", "steps/s", "steps/s +img", "ms/frame", "cpu ms/frame", "expert success",
                    "ep steps", "eps/s", "eps/s +img"):
            table.add_column(col, justify="left" if col == "env" else "right", no_wrap=True)
        for r in rows:
            table.add_row(
                r["env_id"].split("/")[-1], f"{r['steps_per_s_no_render']:.0f}",
                f"{r['steps_per_s_render']:.0f}", f"{r['ms_per_frame']:.2f}",
                f"{r['cpu_ms_per_frame']:.2f}",
                f"{r['expert_successes']}/{r['expert_episodes']}",
                f"{r['expert_mean_steps']:.0f}", f"{r['expert_episodes_per_s_no_render']:.1f}",
                f"{r['expert_episodes_per_s_render']:.1f}")
        Console(width=140).print(table)
        path = write_json_atomic(out, {"provenance": provenance(), "results": rows})
        typer.echo(f"wrote {path}")
