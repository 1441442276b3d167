"""The eval runs of a comparison: every decoder x condition x training seed, resumable.

Usage: ``runs = run_evals(cfg, sets)``; ``runs[decoder][condition][training seed]`` is that
run's ``eval_info.json`` summary.

Conditions: ``train`` (train instructions, no latency), ``heldout`` (held-out instructions,
env seeds shifted by ``HELDOUT_SEED_OFFSET``) and ``latency`` (latency-aware, train
instructions). Runs go to ``scratch/compare/runs/<Env>/<model hash>/`` so a rerun resumes them,
and a rerun with more (or fewer) episodes starts from the episodes the same runs already have.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import asdict, replace
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
                    "latency": replace(base, latency=cfg.latency),
                    "rtc": replace(base, latency=cfg.latency, rtc=True)}
            plan += [(decoder, c, seed, runs[c]) for c in cfg.conditions]
    return plan


def run_folder(cfg: CompareConfig, sets: dict[int, Path],
               item: tuple[str, str, int, Any]) -> Path:
    """Where one eval run of :func:`eval_plan` goes (keyed by the evaluated weights)."""
    from policies.vla_policy import resolve_checkpoint

    decoder, cond, seed, ecfg = item
    model = fingerprint(resolve_checkpoint(sets[seed], decoder))
    return (SCRATCH / "runs" / env_folder(cfg.env_id) / model
            / f"{decoder}-{cond}-s{ecfg.seed}-n{cfg.episodes}")


def _same_run(saved: dict[str, Any], ecfg: Any) -> bool:
    """Whether a run folder's saved settings are the run ``ecfg`` describes.

    The checkpoint path may differ: a run folder sits under the fingerprint of the weights it
    evaluated (:func:`run_folder`), so its siblings and itself evaluated these weights, from
    wherever the set was copied (run folders brought back from the GPU box name its paths).
    """
    from experiments.evaluate import identity_diff

    return all(field == "policy" for field in identity_diff(saved, ecfg))


def adopt_run(ecfg: Any, out: Path) -> None:
    """Point a run folder's saved settings at this checkpoint path (see :func:`_same_run`).

    Then ``evaluate(..., resume=True)`` accepts a run made from another copy of the set;
    a folder with other settings is left for ``evaluate`` to refuse.
    """
    from envs.files import read_json_object, write_json_atomic
    from experiments.evaluate import CONFIG_FILE

    try:
        saved = read_json_object(out / CONFIG_FILE)
    except ValueError:
        return
    if saved.get("policy") != ecfg.policy and _same_run(saved, ecfg):
        write_json_atomic(out / CONFIG_FILE, {**saved, "policy": ecfg.policy})


def take_over_episodes(ecfg: Any, out: Path) -> tuple[int, Path | None]:
    """Start an empty run folder from the same eval run with another episode count.

    A comparison grown from 100 to 500 episodes keeps the 100 it has (episode ``i`` is env
    seed ``seed + i`` at any count); one cut to fewer keeps a prefix. Of ``out``'s siblings
    named like it but for the ``-n<count>`` suffix, whose saved settings match ``ecfg`` (the
    run identity of :func:`experiments.evaluate.identity_diff`, any checkpoint path: see
    :func:`_same_run`), the one with the most episodes below ``ecfg.episodes`` gives them:
    its records are copied into ``out`` with ``ecfg``'s settings (atomically), and the run
    resumes from there.

    Returns:
        ``(episodes taken over, the folder they came from)``; ``(0, None)`` when ``out``
        already holds episodes or no sibling matches.
    """
    from envs.files import read_json_object, write_json_atomic, write_text_atomic
    from experiments.evaluate import CONFIG_FILE, EPISODES_FILE, load_records

    stem, _, count = out.name.rpartition("-n")
    if not count.isdigit() or load_records(out) or not out.parent.is_dir():
        return 0, None
    best: tuple[int, Path | None, dict[int, Any]] = (0, None, {})
    for other in sorted(out.parent.iterdir()):
        rest = other.name.removeprefix(stem + "-n")
        if other == out or rest == other.name or not rest.isdigit():
            continue
        try:
            saved = read_json_object(other / CONFIG_FILE)
        except ValueError:
            continue
        if not _same_run(saved, ecfg):
            continue
        records = {i: r for i, r in load_records(other).items() if i < ecfg.episodes}
        if len(records) > best[0]:
            best = (len(records), other, records)
    n, source, records = best
    if n:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / CONFIG_FILE, asdict(ecfg))
        write_text_atomic(out / EPISODES_FILE,
                          "".join(json.dumps(records[i]) + "\n" for i in sorted(records)))
    return n, source


def _finished(folder: Path, episodes: int) -> int:
    """Episodes recorded so far in an eval run's folder (its ``episodes.jsonl`` lines)."""
    from experiments.evaluate import EPISODES_FILE

    try:
        with open(folder / EPISODES_FILE, "rb") as f:
            return min(episodes, sum(1 for line in f if line.endswith(b"\n")))
    except OSError:
        return 0


def run_evals(cfg: CompareConfig, sets: dict[int, Path], log=print,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every eval; returns ``runs[decoder][condition][seed] = summary``.

    Args:
        cfg: The comparison.
        sets: Training seed -> checkpoint set.
        log: One line per finished run.
        progress: One progress bar on stderr over the whole comparison: episodes finished
            (resumed ones included) out of decoders x training seeds x conditions x episodes,
            updated as episodes finish.
    """
    from tqdm import tqdm

    from experiments.evaluate import evaluate

    plan = eval_plan(cfg, sets)
    folders = [run_folder(cfg, sets, item) for item in plan]
    bar = tqdm(total=len(plan) * cfg.episodes, disable=not progress, unit="ep",
               desc="compare", file=sys.stderr, dynamic_ncols=True)

    def say(message: str) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            log(message)

    def one(item: tuple[str, str, int, Any], out: Path) -> dict[str, Any]:
        decoder, cond, seed, ecfg = item
        adopt_run(ecfg, out)
        taken, source = take_over_episodes(ecfg, out)
        if taken:
            say(f"  {decoder:<12} {cond:<8} seed {seed}: {taken} episodes taken over from "
                f"{source.name}")
        summary = evaluate(ecfg, out, resume=True, progress=False,
                           **({"runner": runner} if runner else {}))
        say(f"  {decoder:<12} {cond:<8} seed {seed}: {summary['pc_success']:5.1f}% "
            f"({summary['episodes']} ep, {summary['eval_s']:.0f} s)")
        return summary

    runs: dict[str, Any] = {d: {c: {} for c in CONDITIONS} for d in cfg.decoders}
    runner, session = None, nullcontext()
    if cfg.ray:  # one cluster for every run; each run starts (and stops) its own actors
        from experiments.ray_eval import ray_runner, ray_session

        runner, session = ray_runner(cfg.address), ray_session(cfg.address)
    try:
        with session, ThreadPoolExecutor(cfg.jobs) as pool:
            futures = [pool.submit(one, item, out)
                       for item, out in zip(plan, folders, strict=True)]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5)
                done = sum(_finished(out, cfg.episodes) for out in folders)
                if done != bar.n:
                    bar.update(done - bar.n)
            for (decoder, cond, seed, _), future in zip(plan, futures, strict=True):
                runs[decoder][cond][seed] = future.result()
        bar.update(bar.total - bar.n)
    finally:
        bar.close()
    return runs
