"""The ``robodecode collect`` command (registered by ``envs.cli``).

Usage: robodecode collect --env robodecode/TabletopPickPlace-v0 --episodes 50 --out scratch/demos
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from envs.ids import DEFAULT_ENV_ID


def _dir_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def register_collect(app: typer.Typer) -> None:
    """Add ``collect`` to the top-level app."""

    @app.command("collect")
    def collect_command(
        env: Annotated[str, typer.Option(help="Registered gymnasium id.")] = DEFAULT_ENV_ID,
        episodes: Annotated[int, typer.Option(help="Episodes the dataset must hold.")] = 50,
        out: Annotated[Path | None, typer.Option(
            help="Dataset folder (default: scratch/datasets/<env name>).")] = None,
        noise: Annotated[float, typer.Option(help="Expert action-noise level.")] = 0.0,
        workers: Annotated[int, typer.Option(help="Spawned rollout processes.")] = 1,
        seed: Annotated[int, typer.Option(help="Attempt i uses seed + i // K.")] = 0,
        targets_per_layout: Annotated[int, typer.Option(
            "--targets-per-layout", help="K episodes per layout, each with another target pair "
            "(same scene, different instruction); --episodes must be a multiple of K.")] = 1,
        video: Annotated[bool, typer.Option(
            "--video", help="Store frames as H.264 mp4 (lossy) instead of PNG.")] = False,
        keep_failed: Annotated[bool, typer.Option(
            "--keep-failed", help="Also store failed expert attempts (flagged).")] = False,
        env_kwargs: Annotated[str, typer.Option(
            help='JSON keyword arguments for gymnasium.make, e.g. \'{"image_size": 96}\'.'
        )] = "{}",
    ) -> None:
        """Collect scripted-expert demonstrations into a LeRobotDataset v3.0 folder.

        Frames are stored losslessly (PNG inside the parquet) unless --video.

        Rerunning an interrupted command with the same arguments resumes it.

        Only successful expert episodes are kept unless --keep-failed.

        With --targets-per-layout K, every layout is recorded under K target pairs (only whole
        layouts are kept), so only the instruction tells its episodes apart.
        """
        from envs.ids import check_env_id
        from envs.lerobot_dataset import collect

        try:
            kwargs = json.loads(env_kwargs)
            if not isinstance(kwargs, dict):
                raise ValueError("must be a JSON object")
        except ValueError as err:
            typer.echo(f"error: --env-kwargs is not a JSON object ({err})", err=True)
            raise typer.Exit(2) from None
        target = out or Path("scratch/datasets") / env.split("/")[-1].split(":")[-1]
        try:
            check_env_id(env)
            result = collect(env, episodes, target, noise=noise, workers=workers, seed=seed,
                             env_kwargs=kwargs, keep_failed=keep_failed, video=video,
                             targets_per_layout=targets_per_layout)
        except (ValueError, RuntimeError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (envs.workers.Terminated)
            from envs.workers import describe_stop

            what, code = describe_stop(stop)
            typer.echo(f"\nerror: {what}; finished attempts are staged in {target / '.staging'}, "
                       "rerun the same command to resume", err=True)
            raise typer.Exit(code) from None
        size_mb = _dir_size(target) / 2**20
        staged_mb = _dir_size(target / ".staging") / 2**20
        typer.echo(
            f"{result.episodes} episodes, {result.frames} frames -> {target} "
            f"({size_mb - staged_mb:.1f} MiB dataset + {staged_mb:.1f} MiB .staging); "
            f"{result.successes}/{result.attempts} expert attempts succeeded; "
            f"{result.new_attempts} new in {result.seconds:.1f} s")
