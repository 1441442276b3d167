"""Commands of ``experiments`` (evaluation, comparison) for the ``robodecode`` CLI.

Usage: robodecode eval --policy expert --episodes 20 --workers 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envs.ids import DEFAULT_ENV_ID


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add the evaluation and comparison commands to the top-level app."""

    @app.command("eval")
    def eval_command(
        policy: Annotated[str, typer.Option(help="expert, random, a VLA checkpoint folder (or "
                                            "checkpoint set), or module:factory.")],
        decoder: Annotated[str | None, typer.Option(
            help="Decoder spec for checkpoints: ar, jacobi, jacobi+ee, cjacobi[+ee], diffusion@T, "
                 "flow@K[:heun], oft.")] = None,
        env: Annotated[str, typer.Option(help="Gymnasium env id.")] = DEFAULT_ENV_ID,
        episodes: Annotated[int, typer.Option(help="Number of episodes N.")] = 50,
        seed: Annotated[int, typer.Option(help="First seed S; episode i uses S+i.")] = 0,
        split: Annotated[str, typer.Option(help="Instructions: train or heldout.")] = "train",
        workers: Annotated[int, typer.Option(help="Env worker processes (spawn).")] = 1,
        threads: Annotated[int, typer.Option(help="Torch threads per worker.")] = 1,
        videos: Annotated[int, typer.Option(help="mp4 videos of the first K episodes.")] = 0,
        latency: Annotated[str | None, typer.Option(
            help="Latency-aware mode: 'measured' or a fixed latency in ms.")] = None,
        k: Annotated[int | None, typer.Option(
            help="Actions executed per chunk (default: the whole chunk).")] = None,
        ensemble: Annotated[float | None, typer.Option(
            help="ACT temporal-ensembling rate m (off by default; use with --k 1).")] = None,
        rtc: Annotated[bool, typer.Option(
            "--rtc", help="Real-time chunking (with --latency): the new chunk continues the "
                          "actions that execute while it decodes.")] = False,
        max_steps: Annotated[int | None, typer.Option(
            help="Step cap per episode (default: the env's time limit).")] = None,
        expert_noise: Annotated[float, typer.Option(
            help="Action noise of the expert policy.")] = 0.0,
        device: Annotated[str, typer.Option(help="Torch device of a VLA policy.")] = "cpu",
        fast: Annotated[bool, typer.Option(
            "--fast", help="Decode on the fast path: static KV cache, CUDA graphs on CUDA "
                           "(same answers as the eager path).")] = False,
        out: Annotated[Path | None, typer.Option(
            help="Output folder (default: scratch/eval/<env>/<policy>[-<decoder>]...).")] = None,
        resume: Annotated[bool, typer.Option(
            help="Skip episodes already recorded in --out.")] = False,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
        ray: Annotated[bool, typer.Option(
            "--ray", help="Run episodes on Ray actors (--workers of them; pip install "
                          "'robodecode[dist]').")] = False,
        address: Annotated[str | None, typer.Option(
            help="With --ray: join this cluster ('auto' or host:port) instead of starting a "
                 "local one.")] = None,
    ) -> None:
        """Evaluate a policy's success rate on seeded episodes.

        Writes episodes.jsonl (one line per finished episode), eval_info.json (LeRobot's keys,
        the 95% Wilson interval, passes and ms per chunk, Hz, provenance) and videos/.
        """
        from experiments.evaluate import EvalConfig, evaluate

        if out is None:
            tag = Path(policy).name if policy not in ("expert", "random") else policy
            tag += f"-{decoder}" if decoder else ""
            tag += f"-{split}" if split != "train" else ""
            tag += f"-latency{latency}" if latency else ""
            tag += "-rtc" if rtc else ""
            out = Path("scratch") / "eval" / env.split("/")[-1].split(":")[-1] / tag
        try:
            config = EvalConfig(policy=policy, env_id=env, decoder=decoder, episodes=episodes,
                                seed=seed, split=split, workers=workers, threads=threads,
                                videos=videos, latency=latency, k=k, ensemble_decay=ensemble,
                                rtc=rtc,
                                max_steps=max_steps, expert_noise=expert_noise,
                                device=device, fast=fast)
            if address is not None and not ray:
                raise ValueError("--address applies only with --ray")
            runner = None
            if ray:
                from experiments.ray_eval import ray_runner

                runner = ray_runner(address)
            summary = evaluate(config, out, resume=resume, progress=progress, runner=runner)
        except ValueError as err:
            _fail(str(err).replace("\n", " "))
            return
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (envs.workers.Terminated)
            from envs.workers import describe_stop

            what, code = describe_stop(stop)
            typer.echo(f"\nerror: {what}; finished episodes are saved in {out}, rerun with "
                       "--resume", err=True)
            raise typer.Exit(code) from None
        typer.echo(format_summary(summary))
        typer.echo(f"wrote {out / 'eval_info.json'}")


def format_summary(summary: dict) -> str:
    """One line: success with its Wilson interval, passes, ms and Hz per chunk."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    name = summary["policy"] + (f" {summary['decoder']}" if summary["decoder"] else "")
    return (f"{summary['env_id']} {name}: success {summary['pc_success']:.1f}% "
            f"[{summary['ci_low']:.1f}, {summary['ci_high']:.1f}] over {summary['episodes']} "
            f"episodes; passes/chunk {num(summary['nfe_per_chunk'], '.2f')}; "
            f"ms/chunk {num(summary['ms_per_chunk'], '.2f')}; Hz {num(summary['hz'], '.1f')}; "
            f"k {summary['k']}; {summary['eval_s']:.1f} s")
