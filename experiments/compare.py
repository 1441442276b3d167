"""The paradigm comparison: every action decoder on the same backbone, data, seeds and simulator.

Usage: robodecode compare [--env ID] [--out DIR] [--quick] [--retrain] [--episodes N]

Steps: collect expert demos if missing; train the four heads and consistency-distill the AR head
where no checkpoint set exists (``--retrain`` forces it); evaluate every decoder on the same env
seeds with train instructions, held-out instructions and in latency-aware mode, per training
seed; print the table and write ``compare.json``, ``compare.md`` and ``compare.png``.

Checkpoint sets live in ``<root>/seed<S>/{ar,diffusion,flow,oft,cjacobi}``; the shipped default
(``experiments/checkpoints/<Env>/``) is used when it holds the seed. Eval runs go to
``scratch/compare/runs/`` keyed by the checkpoint's content, so a rerun resumes them. Plain runs
and ``--quick`` write to ``scratch/compare/``; committed results only with an explicit ``--out``.

``--gpu-timing`` (on a machine with a CUDA GPU) only times every decoder's ``Policy.infer`` on
the first training seed's set, eager, and writes ``gpu_eager_timing.json`` into the results
folder; a later compare run there adds its ms as the ``gpu_eager_ms_per_chunk`` column for the
decoders whose checkpoint is unchanged (same content hash).

This module holds the command and the steps in order; each step is its own module:
:mod:`~experiments.compare_config` (settings), :mod:`~experiments.compare_checkpoints` (demos,
training), :mod:`~experiments.compare_evals` (eval runs), :mod:`~experiments.compare_gpu` (GPU
timing), :mod:`~experiments.compare_rows` (pooling, paired tests),
:mod:`~experiments.compare_shipped` (the shipped set's own rows),
:mod:`~experiments.compare_report` (markdown, terminal table), :mod:`~experiments.compare_plot`
(the figure), :mod:`~experiments.compare_videos` (rollout videos).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from envs.files import write_json_atomic
from envs.ids import DEFAULT_ENV_ID, check_env_id
from experiments.compare_checkpoints import (
    DISTILL_TEACHER_MIX,
    checkpoint_root,
    dataset_dir,
    ensure_checkpoints,
    fingerprint,
    models_of,
)
from experiments.compare_config import (
    COMMITTED,
    CONDITIONS,
    DEFAULT_DECODERS,
    GPU_TIMING,
    GROUNDING,
    HELDOUT_SEED_OFFSET,
    SCRATCH,
    SEED_STRIDE,
    SHIPPED,
    SHIPPED_RUN,
    CompareConfig,
    env_folder,
)
from experiments.compare_config import QUICK as QUICK_DECODERS
from experiments.compare_evals import eval_plan, run_evals
from experiments.compare_gpu import chunk_timing, merge_gpu_timing, write_gpu_timing
from experiments.compare_plot import plot
from experiments.compare_report import print_table, write_markdown
from experiments.compare_rows import (
    decoder_row,
    fill_heldout_ci,
    headline,
    machines_of,
    runs_from_episodes,
)
from experiments.compare_shipped import attach_shipped, recorded_models, shipped_seed
from experiments.compare_videos import write_videos

__all__ = ["COMMITTED", "CONDITIONS", "DEFAULT_DECODERS", "DISTILL_TEACHER_MIX", "GPU_TIMING",
           "GROUNDING", "HELDOUT_SEED_OFFSET", "QUICK_DECODERS", "SCRATCH", "SEED_STRIDE",
           "SHIPPED", "SHIPPED_RUN", "CompareConfig", "checkpoint_root", "chunk_timing",
           "compare", "dataset_dir", "ensure_checkpoints", "env_folder", "eval_plan",
           "fingerprint", "merge_gpu_timing", "models_of", "rebuild_report", "recorded_models",
           "register", "run_evals", "shipped_seed", "write_gpu_timing"]


def rebuild_report(out: Path, command: str, log=print) -> dict[str, Any]:
    """Rebuild ``compare.json``'s derived parts, ``compare.md`` and ``compare.png`` in ``out``.

    Evaluates nothing: the paired tests are recomputed from the recorded episodes and the
    shipped set's own rows are attached (:func:`attach_shipped`). The run's command and
    provenance stay; ``report_command`` records this rebuild.
    """
    import json

    path = Path(out) / "compare.json"
    if not path.is_file():
        raise ValueError(f"--report-only rebuilds an existing {path}, and there is none")
    result = json.loads(path.read_text())
    fill_heldout_ci(result)
    result["headline"] = headline(result["rows"], runs_from_episodes(result))
    attach_shipped(result, Path(out), log=log)
    result["report_command"] = command
    plot(result, Path(out) / result.get("plot", "compare.png"))
    write_json_atomic(path, result)
    write_markdown(result, Path(out) / "compare.md")
    return result


def compare(cfg: CompareConfig, log=print) -> dict[str, Any]:
    """Run the whole comparison and write its files; returns the ``compare.json`` object."""
    from experiments.provenance import provenance
    from policies.vla_policy import resolve_checkpoint

    check_env_id(cfg.env_id)
    sets = ensure_checkpoints(cfg, log=log)
    total = len(cfg.decoders) * len(sets) * len(cfg.conditions) * cfg.episodes
    log(f"evaluating {len(cfg.decoders)} decoders x {len(sets)} training seed(s) x "
        f"{len(cfg.conditions)} conditions x {cfg.episodes} episodes = {total} episodes")
    runs = run_evals(cfg, sets, log=log)
    rows = [decoder_row(d, runs[d]) for d in cfg.decoders]
    ks = {r["k"] for r in rows}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    first = cfg.train_seeds[0]
    models = {d: fingerprint(resolve_checkpoint(sets[first], d)) for d in cfg.decoders}
    gpu_timing = merge_gpu_timing(rows, out, models, log=log)
    videos = []
    if cfg.videos:
        log(f"rollout videos: {cfg.videos} episode(s), every decoder side by side")
        videos = write_videos(cfg, sets, runs, out, log=log)
    result = {
        "env_id": cfg.env_id,
        "rows": rows,
        "gpu_timing": gpu_timing,
        "headline": headline(rows, runs),
        "k": ks.pop() if len(ks) == 1 else sorted(ks, key=str),
        "episodes_per_seed": cfg.episodes,
        "latency": cfg.latency,
        "conditions": list(cfg.conditions),
        "seeds": {"train": list(cfg.train_seeds),
                  "env_first": {str(s): cfg.env_seed(s) for s in cfg.train_seeds},
                  "heldout_offset": HELDOUT_SEED_OFFSET,
                  "describe": (f"{cfg.seed} + {SEED_STRIDE} x training seed + i (train and "
                               f"latency-aware), + {HELDOUT_SEED_OFFSET} more for held-out")},
        "checkpoints": {str(s): str(p) for s, p in sets.items()},
        "models": models_of(sets, cfg.decoders),
        "episodes": {d: {c: {str(s): [[e["seed"], int(bool(e["success"]))]
                                      for e in r["per_episode"]] for s, r in by.items()}
                         for c, by in runs[d].items()} for d in cfg.decoders},
        "machines": machines_of(runs),
        "plot": "compare.png",
        "videos": videos,
        "quick": cfg.quick,
        "command": cfg.command,
        "provenance": provenance(torch_threads=cfg.threads, workers=cfg.workers,
                                 jobs=cfg.jobs),
    }
    attach_shipped(result, out, log=log)
    plot(result, out / "compare.png")
    write_json_atomic(out / "compare.json", result)
    write_markdown(result, out / "compare.md")
    return result


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode compare`` to the top-level app."""

    @app.command("compare")
    def compare_command(
        env: Annotated[str, typer.Option(help="Gymnasium env id.")] = DEFAULT_ENV_ID,
        out: Annotated[Path | None, typer.Option(
            help="Results folder (default scratch/compare/<Env>; committed results only "
                 "with an explicit --out, e.g. experiments/results/tabletop-decoders).")] = None,
        quick: Annotated[bool, typer.Option(help="Smoke run: tiny model, ~50 steps, 3 "
                                            "decoders, 1 episode.")] = False,
        retrain: Annotated[bool, typer.Option(help="Train every checkpoint set anew.")] = False,
        episodes: Annotated[int | None, typer.Option(
            help="Episodes per training seed and condition (default 10; quick 1).")] = None,
        train_seeds: Annotated[list[int] | None, typer.Option(
            "--train-seeds", help="Training seeds (repeat the option); default 0.")] = None,
        decoders: Annotated[list[str] | None, typer.Option(
            "--decoders", help="Decoder specs (repeat the option); default: all.")] = None,
        workers: Annotated[int | None, typer.Option(help="Env workers per eval run.")] = None,
        jobs: Annotated[int, typer.Option(help="Eval runs at the same time.")] = 1,
        k: Annotated[int | None, typer.Option(
            help="Actions executed per chunk (default: the whole chunk).")] = None,
        latency: Annotated[str, typer.Option(
            help="Latency-aware runs: 'measured' or milliseconds.")] = "measured",
        checkpoints: Annotated[Path | None, typer.Option(
            help="Root of seed<S>/ checkpoint sets (default: shipped, else scratch).")] = None,
        seed: Annotated[int, typer.Option(help="First env seed.")] = 1000,
        conditions: Annotated[list[str] | None, typer.Option(
            "--conditions", help="train, heldout, latency, rtc (latency-aware with real-time "
                                 "chunking; repeat the option); default train, heldout, latency.")
        ] = None,
        videos: Annotated[int | None, typer.Option(
            help="Train episodes replayed into side-by-side rollout videos (default 2; quick "
                 "0).")] = None,
        gpu_timing: Annotated[bool, typer.Option(
            "--gpu-timing", help=f"Only time every decoder eagerly on this machine's CUDA GPU "
            f"(first training seed's set) into OUT/{GPU_TIMING}; the next compare run there "
            "adds it as a column.")] = False,
        report_only: Annotated[bool, typer.Option(
            "--report-only", help="Only rebuild OUT's compare.md/.png and the derived parts of "
            "its compare.json (paired tests, the shipped set's own rows, passes from "
            f"OUT/{SHIPPED_RUN}/compare.json where needed); evaluates nothing.")] = False,
        ray: Annotated[bool, typer.Option(
            "--ray", help="Run every eval's episodes on Ray actors (--workers per run).")] = False,
        address: Annotated[str | None, typer.Option(
            help="With --ray: join this cluster ('auto' or host:port).")] = None,
    ) -> None:
        """Compare every action decoder (success, passes, ms, Hz, latency-aware) on one task."""
        if report_only:
            if out is None:
                typer.echo("error: --report-only needs --out (the results folder)", err=True)
                raise typer.Exit(2)
            try:
                result = rebuild_report(out, shlex.join(["robodecode", *sys.argv[1:]]),
                                        log=lambda m: typer.echo(m, err=True))
            except ValueError as err:
                typer.echo(f"error: {str(err).splitlines()[0]}", err=True)
                raise typer.Exit(2) from None
            print_table(result)
            typer.echo(f"wrote {Path(out) / 'compare.md'}")
            return

        given = {"env_id": env, "out": out, "retrain": retrain, "jobs": jobs, "k": k,
                 "latency": latency, "checkpoints": checkpoints, "seed": seed,
                 "ray": ray, "address": address}
        for name, value in (("episodes", episodes), ("workers", workers), ("videos", videos)):
            if value is not None:
                given[name] = value
        if train_seeds:
            given["train_seeds"] = tuple(train_seeds)
        if decoders:
            given["decoders"] = tuple(decoders)
        if conditions:
            given["conditions"] = tuple(conditions)
        try:
            cfg = (CompareConfig.quick_settings(**given) if quick else CompareConfig(**given))
            if gpu_timing:
                timing = write_gpu_timing(cfg, log=lambda m: typer.echo(m, err=True))
                for row in timing["rows"]:
                    typer.echo(f"{row['decoder']:<14} {row['ms_per_chunk']:8.2f} ms/chunk "
                               f"({row['nfe_per_chunk']:.2f} passes, {timing['gpu']}, eager)")
                typer.echo(f"wrote {Path(cfg.out) / GPU_TIMING}")
                return
            result = compare(cfg, log=lambda m: typer.echo(m, err=True))
        except ValueError as err:
            typer.echo(f"error: {str(err).splitlines()[0]}", err=True)
            raise typer.Exit(2) from None
        print_table(result)
        typer.echo(f"wrote {Path(cfg.out) / 'compare.json'}")
