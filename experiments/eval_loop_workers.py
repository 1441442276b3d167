"""Closed-loop conditions over the same task seeds, in spawned workers, resumable.

Usage: ``run_conditions([LoopCondition(Path("out/a"), "train", "oracle", "expert")], tasks=100,
workers=14, init=init_worker, job=run_condition_task)``

Every condition (a split, a planner mode, a skill and its decoder) runs tasks ``seed ..
seed + tasks - 1``; a condition's folder holds its ``episodes.jsonl`` (one task per line,
appended by this process only, so a killed run loses only tasks in flight) and tasks already
there are skipped. Jobs are submitted seed by seed across conditions, so a run stopped by its
deadline leaves every condition about equally far and the finished seeds mostly shared. The
worker side (:func:`experiments.eval_loop.init_worker`, ``run_condition_task``) is passed in,
so this module knows nothing of envs or skills.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envs.files import append_jsonl_atomic


@dataclass(frozen=True)
class LoopCondition:
    """One evaluated condition of the closed loop.

    Attributes:
        out: Its folder (``episodes.jsonl``, ``summary.json``).
        split: ``train`` or ``heldout`` instructions.
        planner: Planner mode (``experiments.eval_loop.PLANNERS``).
        skill: ``expert``, or a VLA checkpoint set / model folder.
        decoder: Decoder spec of a VLA skill (empty for the expert).
        latency: Latency-aware mode (``"measured"`` or ms; empty: off), see ``eval-loop``.
        rtc: Real-time chunking for the VLA skill (with ``latency``).
        k: Actions a VLA skill executes per chunk.
    """

    out: Path
    split: str
    planner: str
    skill: str
    decoder: str = ""
    latency: str = ""
    rtc: bool = False
    k: int = 8

    def __post_init__(self) -> None:
        if self.split not in ("train", "heldout"):
            raise ValueError(f"split must be train or heldout, got {self.split!r}")
        if self.skill != "expert" and not self.decoder:
            raise ValueError(f"decoder must be given for the VLA skill {self.skill!r}")

    def key(self) -> dict[str, str]:
        """The condition as plain JSON (what a worker receives)."""
        return {k: str(v) for k, v in asdict(self).items()}


def load_episodes(out: Path) -> list[dict[str, Any]]:
    """The tasks already recorded in ``out/episodes.jsonl`` (a torn last line is dropped)."""
    log = Path(out) / "episodes.jsonl"
    if not log.is_file():
        return []
    records = []
    for line in log.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def run_conditions(conditions: list[LoopCondition], *, tasks: int, seed: int = 0,
                   workers: int = 1, init: Callable[..., None], job: Callable[..., dict],
                   threads: int = 1, deadline_s: float | None = None,
                   progress: bool = True) -> dict[Path, list[dict[str, Any]]]:
    """Run every condition's missing tasks; returns each folder's records (old and new).

    Args:
        conditions: The conditions (distinct folders).
        tasks: Tasks per condition (task ``i`` uses env seed ``seed + i``).
        seed: First env seed.
        workers: Spawned worker processes (1: this process).
        init: Worker initializer, called with ``threads``.
        job: ``job(condition.key(), seed) -> record`` run in a worker.
        threads: Torch threads per worker.
        deadline_s: Stop submitting after this many seconds (tasks in flight still finish and
            are recorded; 0: run nothing, just return the records); ``None``: run everything.
        progress: Show a progress bar.

    Raises:
        ValueError: If two conditions share a folder.
        RuntimeError: If a worker died (finished tasks are saved; run again to resume).
    """
    from tqdm import tqdm

    if len({c.out for c in conditions}) != len(conditions):
        raise ValueError("conditions must have distinct folders")
    done = {c.out: load_episodes(c.out) for c in conditions}
    have = {c.out: {r["seed"] for r in done[c.out]} for c in conditions}
    todo = [(c, seed + i) for i in range(tasks) for c in conditions
            if seed + i not in have[c.out]]
    stop_at = None if deadline_s is None else time.monotonic() + deadline_s
    bar = tqdm(total=len(todo), desc="eval-loop", unit="task", disable=not progress)
    for cond, record in _results(todo, workers, init, job, threads, stop_at):
        append_jsonl_atomic(cond.out / "episodes.jsonl", record)
        done[cond.out].append(record)
        bar.update()
    bar.close()
    return done


def _results(todo: list[tuple[LoopCondition, int]], workers: int, init: Callable[..., None],
             job: Callable[..., dict], threads: int, stop_at: float | None
             ) -> Iterator[tuple[LoopCondition, dict[str, Any]]]:
    """Yield ``(condition, record)`` as tasks finish, here or in spawned workers."""
    from envs.workers import worker_pool

    def late() -> bool:
        return stop_at is not None and time.monotonic() > stop_at

    if not todo or late():  # a deadline already passed: only the summaries are wanted
        return
    if workers == 1:
        init(threads)
        for cond, s in todo:
            if late():
                return
            yield cond, job(cond.key(), s)
        return
    with worker_pool(min(workers, len(todo)), init, (threads,)) as pool:
        futures = {pool.submit(job, cond.key(), s): cond for cond, s in todo}
        try:
            for future in as_completed(futures):
                if late():  # stop: pending tasks are dropped, those in flight still count
                    for other in futures:
                        other.cancel()
                if not future.cancelled():
                    yield futures[future], future.result()
        except BrokenProcessPool as err:
            raise RuntimeError(f"a loop worker died ({err}); finished tasks are saved, run "
                               "again to resume") from None
