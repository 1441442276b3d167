"""The eval runs of a comparison: every decoder x condition x training seed, resumable.

Usage: ``runs = run_evals(cfg, sets)``; ``runs[decoder][condition][training seed]`` is that
run's ``eval_info.json`` summary.

Conditions: ``train`` (train instructions, no latency), ``heldout`` (held-out instructions,
env seeds shifted by ``HELDOUT_SEED_OFFSET``) and ``latency`` (latency-aware, train
instructions). Runs go to ``scratch/compare/runs/<Env>/<model hash>/`` so a rerun resumes them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.compare_checkpoints import fingerprint
from experiments.compare_config import (
    CONDITIONS,
    HELDOUT_SEED_OFFSET,
    SCRATCH,
    CompareConfig,
    env_folder,
)


def eval_plan(cfg: CompareConfig, sets: dict[int, Path]) -> list[tuple[str, str, int, Any]]:
    """Every eval run: ``(decoder, condition, training seed, EvalConfig)``."""
    from experiments.evaluate import EvalConfig

    plan = []
    for decoder in cfg.decoders:
        for seed, folder in sets.items():
            base = EvalConfig(policy=str(folder), env_id=cfg.env_id, decoder=decoder,
                              episodes=cfg.episodes, seed=cfg.env_seed(seed),
                              workers=cfg.workers, threads=cfg.threads, k=cfg.k)
            runs = {"train": base,
                    "heldout": replace(base, split="heldout",
                                       seed=base.seed + HELDOUT_SEED_OFFSET),
                    "latency": replace(base, latency=cfg.latency)}
            plan += [(decoder, c, seed, runs[c]) for c in cfg.conditions]
    return plan


def run_evals(cfg: CompareConfig, sets: dict[int, Path], log=print) -> dict[str, Any]:
    """Run (or resume) every eval; returns ``runs[decoder][condition][seed] = summary``."""
    from experiments.evaluate import evaluate
    from policies.vla_policy import resolve_checkpoint

    runs_root = SCRATCH / "runs" / env_folder(cfg.env_id)

    def one(item: tuple[str, str, int, Any]) -> tuple[str, str, int, dict[str, Any]]:
        decoder, cond, seed, ecfg = item
        model = fingerprint(resolve_checkpoint(sets[seed], decoder))
        out = runs_root / model / f"{decoder}-{cond}-s{ecfg.seed}-n{cfg.episodes}"
        summary = evaluate(ecfg, out, resume=True, progress=False)
        log(f"  {decoder:<12} {cond:<8} seed {seed}: {summary['pc_success']:5.1f}% "
            f"({summary['episodes']} ep, {summary['eval_s']:.0f} s)")
        return decoder, cond, seed, summary

    runs: dict[str, Any] = {d: {c: {} for c in CONDITIONS} for d in cfg.decoders}
    plan = eval_plan(cfg, sets)
    with ThreadPoolExecutor(cfg.jobs) as pool:
        for decoder, cond, seed, summary in pool.map(one, plan):
            runs[decoder][cond][seed] = summary
    return runs
