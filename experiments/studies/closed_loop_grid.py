"""python -m experiments.studies.closed_loop_grid run --root DIR --condition C ...  # grid.

Usage: ``... run --root DIR --condition NAME:SPLIT:PLANNER:SKILL[:DECODER] ... --workers 14``,
then ``... table --root DIR [--pair A,B ...]``.

The closed-loop evaluation of issue 17 as one run: every condition (a split, a planner mode, a
skill and its decoder, e.g. ``grounded-ar:train:grounded:CKPTS:ar``) over the same task seeds,
all conditions sharing one pool of spawned workers (``experiments.eval_loop_workers``), each in
``DIR/NAME`` (``episodes.jsonl``, ``summary.json``) and resumable: run it again to finish what
a ``--deadline-s`` or a crash left. ``table`` prints the markdown rows (success with 95% Wilson
intervals, spec on the executed trace, violations, step success, steps, replans, seconds) and,
for each ``--pair A,B`` (folder names), paired McNemar mid-p tests on the shared seeds: tasks
with a spec violation and tasks solved, A against B.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from envs.files import write_json_atomic
from experiments.eval_loop import condition_summary, init_worker, run_condition_task
from experiments.eval_loop_workers import LoopCondition, load_episodes, run_conditions
from experiments.stats import mcnemar, pair_by_seed


def parse_condition(root: Path, text: str) -> LoopCondition:
    """``NAME:SPLIT:PLANNER:SKILL[:DECODER]`` -> the condition in ``root/NAME``.

    Raises:
        ValueError: If the text has the wrong number of fields or a bad field.
    """
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise ValueError(f"a condition is NAME:SPLIT:PLANNER:SKILL[:DECODER], got {text!r}")
    name, split, planner, skill, *decoder = parts
    return LoopCondition(root / name, split, planner, skill, decoder[0] if decoder else "")


def run(root: Path, conditions: list[str], tasks: int, workers: int, seed: int = 0,
        deadline_s: float | None = None, progress: bool = True) -> dict[str, dict]:
    """Run the conditions' missing tasks and write every ``summary.json``; returns them."""
    from experiments.provenance import provenance

    conds = [parse_condition(root, c) for c in conditions]
    done = run_conditions(conds, tasks=tasks, seed=seed, workers=workers, init=init_worker,
                          job=run_condition_task, deadline_s=deadline_s, progress=progress)
    out = {}
    for cond in conds:
        summary = {**condition_summary(cond, done[cond.out]), "provenance": provenance()}
        write_json_atomic(cond.out / "summary.json", summary)
        out[cond.out.name] = summary
    return out


def _seeds(folder: Path, key: str) -> dict[int, bool]:
    pick = {"success": lambda r: r["success"],
            "violation": lambda r: r["violation"] is not None}[key]
    return {r["seed"]: bool(pick(r)) for r in load_episodes(folder)}


def table_rows(root: Path, names: list[str]) -> list[str]:
    """Markdown rows, one per folder in ``names`` (header first)."""
    rows = ["| condition | split | planner | skill (decoder) | tasks | success % (95% CI) | "
            "spec on trace % | violations | step success % | steps (mean) | replans (mean) | "
            "s / task |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        s = json.loads((root / name / "summary.json").read_text())
        lo, hi = s["success"]["ci95"]
        skill = "expert" if s["skill"] == "expert" else f"VLA ({s['decoder']})"
        rows.append(f"| `{name}` | {s['split']} | {s['planner']} | {skill} | {s['tasks']} | "
                    f"{s['success']['pc']:.1f} ({lo:.1f}–{hi:.1f}) | "
                    f"{s['spec_satisfied']['pc']:.1f} | {s['violation']['k']} | "
                    f"{s['step_success_pc']:.1f} | {s['mean_executed_steps']:.2f} | "
                    f"{s['mean_replans']:.2f} | {s['mean_seconds']:.2f} |")
    return rows


def paired_difference(only_a: int, only_b: int, n: int) -> tuple[float, float, float]:
    """Difference of two paired success rates in points with its 95% Wald interval.

    ``(only_a - only_b) / n`` with variance ``(only_a + only_b - (only_a - only_b)^2 / n) / n^2``
    (the paired-proportions interval; McNemar's test is its significance test).
    """
    d = (only_a - only_b) / n
    half = 1.959964 * math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    return 100 * d, 100 * (d - half), 100 * (d + half)


def paired_rows(root: Path, pairs: list[tuple[str, str]]) -> list[str]:
    """Markdown rows of paired McNemar tests (violations and successes) for ``(A, B)`` pairs."""
    rows = ["| A | B | shared tasks | violations A / B | only A / only B violated | mid-p | "
            "success % A / B | only A / only B solved | mid-p | success A − B, points (95% CI) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        cells = []
        for key in ("violation", "success"):
            x, y = pair_by_seed(_seeds(root / a, key), _seeds(root / b, key))
            test = mcnemar(x, y)
            total = (f"{sum(x)} / {sum(y)}" if key == "violation"
                     else f"{100 * sum(x) / len(x):.1f} / {100 * sum(y) / len(y):.1f}")
            cells += [total, f"{test.only_a} / {test.only_b}", f"{test.p_value:.3g}"]
        diff, low, high = paired_difference(test.only_a, test.only_b, test.n)
        cells.append(f"{diff:+.1f} ({low:+.1f} to {high:+.1f})")
        rows.append(f"| `{a}` | `{b}` | {len(x)} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) the conditions")
    r.add_argument("--root", type=Path, required=True)
    r.add_argument("--condition", action="append", required=True,
                   help="NAME:SPLIT:PLANNER:SKILL[:DECODER] (repeat)")
    r.add_argument("--tasks", type=int, default=100)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--deadline-s", type=float, default=None)
    r.add_argument("--no-progress", dest="progress", action="store_false")
    t = sub.add_parser("table", help="markdown tables of finished folders")
    t.add_argument("--root", type=Path, required=True)
    t.add_argument("--names", nargs="*", help="folders in row order (default: all)")
    t.add_argument("--pair", action="append", default=[], help="A,B: paired tests")
    args = p.parse_args(argv)
    if args.cmd == "run":
        summaries = run(args.root, args.condition, args.tasks, args.workers, args.seed,
                        args.deadline_s, args.progress)
        for name, s in summaries.items():
            print(name, s["tasks"], f"{s['success']['pc']:.1f}%", s["violation"]["k"])
        return
    names = args.names or sorted(d.name for d in args.root.iterdir()
                                 if (d / "summary.json").is_file())
    print("\n".join(table_rows(args.root, names)))
    if args.pair:
        print()
        print("\n".join(paired_rows(args.root, [tuple(x.split(",")) for x in args.pair])))


if __name__ == "__main__":
    main()
