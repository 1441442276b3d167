"""``robodecode bench vla``: every head and decoder of a checkpoint set, side by side.

Usage: robodecode bench vla --checkpoints experiments/checkpoints/TabletopPickPlace-v0/seed0 \
    [--data scratch/demos] [--device cuda] [--table speed|offline] [--out PATH]

Two tables. ``offline`` (:mod:`vla.bench`, the default on CPU; needs ``--data``): passes, ms
and action error per decoder on held-out demo frames. ``speed`` (:mod:`vla.bench_speed`, the
default on CUDA): eager vs fast path (static cache, CUDA graphs) per decoder at batch 1, 8, 64,
against a one-pass graphed floor; its observations come from ``--data`` or, without it, from
the task's own episodes (expert-driven, a few steps in, rendered in MuJoCo). This command adds
provenance and writes the JSON (default ``scratch/vla/bench_vla_<device>.json``; committed
results only with ``--out``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from decoding.threads import DEFAULT_CPU_THREADS

SCRATCH = Path("scratch/vla")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench vla``."""

    @bench.command("vla")
    def bench_vla_cmd(
        checkpoints: Annotated[Path, typer.Option(
            help="folder holding ar/ [cjacobi/ diffusion/ flow/ oft/] checkpoints")],
        data: Annotated[Path | None, typer.Option(
            help="dataset; held-out episodes are decoded (needed by --table offline)")] = None,
        table: Annotated[str, typer.Option(
            help="offline | speed | auto (speed on CUDA, offline on CPU)")] = "auto",
        batches: Annotated[str, typer.Option(help="speed table: batch sizes")] = "1,8,64",
        reps: Annotated[int, typer.Option(help="speed table: timed calls per row")] = 20,
        env_id: Annotated[str, typer.Option(
            help="speed table without --data: the task whose episodes give observations")
        ] = "robodecode/TabletopPickPlace-v0",
        out: Annotated[Path | None, typer.Option(
            help="results JSON (default scratch/vla/bench_vla_<device>.json)")] = None,
        device: str = "cpu",
        threads: int = DEFAULT_CPU_THREADS,
        n_obs: Annotated[int, typer.Option(help="held-out observations per decoder")] = 128,
        train_steps: Annotated[int, typer.Option(help="steps timed for steps/s")] = 5,
        data_cache: Path = SCRATCH / "chunks",
        fp16_check: Annotated[int, typer.Option(
            help="held-out items for the float16-storage check (0 = skip)")] = 0,
    ) -> None:
        """Per head and decoder: params, train steps/s, passes and ms per chunk, action error."""
        import torch

        from experiments.provenance import provenance, write_json_atomic
        from vla.bench import run_bench

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise typer.BadParameter(f"device {device!r} requested but CUDA is not available")
        if table not in ("auto", "offline", "speed"):
            raise typer.BadParameter(f"--table must be offline, speed or auto, got {table!r}")
        if table == "auto":
            table = "speed" if device.startswith("cuda") else "offline"
        torch.set_num_threads(threads)
        try:
            if table == "speed":
                result = speed(checkpoints, data, device, batches, reps, env_id, n_obs,
                               data_cache)
            else:
                if data is None:
                    raise ValueError("--table offline needs --data (held-out demos)")
                result = run_bench(checkpoints, data=data, device=device, threads=threads,
                                   n_obs=n_obs, train_steps=train_steps,
                                   data_cache=data_cache, fp16_check=fp16_check)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        result["provenance"] = provenance(device=device, threads=threads)
        target = out or SCRATCH / f"bench_vla_{table}_{device.split(':')[0]}.json"
        write_json_atomic(target, result)
        typer.echo(f"wrote {target}")
        if table == "speed":
            plot_speed(result, target.with_suffix(".png"))
            typer.echo(f"wrote {target.with_suffix('.png')}")


def speed(checkpoints: Path, data: Path | None, device: str, batches: str, reps: int,
          env_id: str, n_obs: int, data_cache: Path) -> dict:
    """The speed table (:func:`vla.bench_speed.speed_table`) with its settings."""
    from vla.bench_speed import speed_table

    try:
        sizes = tuple(int(b) for b in batches.split(","))
    except ValueError:
        raise ValueError(f"--batches must be comma-separated ints, got {batches!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--batches must be positive, got {batches!r}")
    n = max(n_obs, max(sizes))
    observations = (held_out_observations(checkpoints, data, n, data_cache) if data
                    else episode_observations(env_id, n))
    result = speed_table(checkpoints, observations, device=device, batches=sizes, reps=reps)
    result["settings"] = {"device": device, "batches": list(sizes), "reps": reps,
                          "observations": str(data) if data else f"{env_id} episodes",
                          "timing": "predict_chunk end to end (host obs in, host actions "
                          "out), median; eager and fast interleaved on the same batches",
                          "checkpoints": str(checkpoints)}
    return result


def episode_observations(env_id: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` observations of the task: episode ``seed + i`` after ``i % 12`` expert steps."""
    import gymnasium as gym

    import envs
    from envs.ids import check_env_id

    env = gym.make(check_env_id(env_id))
    expert = envs.make_expert(env)
    out = []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=seed + i)
            expert.reset()
            for _ in range(i % 12):
                obs, *_ = env.step(expert.act(obs))
            out.append(obs)
    finally:
        env.close()
    return out


def held_out_observations(checkpoints: Path, data: Path, n: int, data_cache: Path) -> list[dict]:
    """``n`` held-out observations of the dataset, shaped for the checkpoints' models."""
    from vla.checkpoint import load_config
    from vla.data import load_split
    from vla.evaluate import eval_indices

    cfg = next(load_config(p.parent) for p in sorted(Path(checkpoints).glob("*/config.json")))
    split = load_split(data, cfg.horizon, cfg.cameras, cfg.image_size, cache_dir=data_cache)
    held = split.val or split.train
    out = []
    for i in eval_indices(held, n):
        batch = held.obs_dict([i])
        out.append({k: (v[0] if k == "instruction" else v[0].numpy()) for k, v in batch.items()})
    return out


def plot_speed(result: dict, path: Path) -> None:
    """Eager vs fast ms per chunk of every decoder, one panel per batch size, floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    batches = sorted({r["batch"] for r in rows})
    decoders = list(dict.fromkeys(r["decoder"] for r in rows))
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4.2), sharey=True,
                             squeeze=False)
    for ax, b in zip(axes[0], batches, strict=True):
        at = {r["decoder"]: r for r in rows if r["batch"] == b}
        xs = range(len(decoders))
        ax.bar([x - 0.2 for x in xs], [at[d]["eager_ms"] for d in decoders], 0.4,
               label="eager", color="#bbbbbb")
        ax.bar([x + 0.2 for x in xs], [at[d]["fast_ms"] for d in decoders], 0.4,
               label="fast (CUDA graphs)" if result["settings"]["device"].startswith("cuda")
               else "fast (static cache)", color="#1f77b4")
        floor = min(at[d]["floor_ms"] for d in decoders)
        ax.axhline(floor, ls="--", color="k", lw=1, label=f"one-pass floor {floor:.2f} ms")
        ax.set_xticks(list(xs), decoders, rotation=60, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"batch {b}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("ms per chunk, predict_chunk end to end (log)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"eager vs fast path, {result['settings']['device']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
