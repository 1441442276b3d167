"""python -m experiments.studies.ray_scaling --out scratch/ray-scaling  # [--actors 1 2 4 8 14].

Episodes per second of ``eval --ray`` with 1..N actors, against linear and the local pool.
For each policy (``expert``, or a decoder of the shipped checkpoint) and each actor count n it
runs ``episodes_per_actor * n`` episodes twice on the same seeds: on n Ray actors (one local
cluster for the whole study) and on n spawned workers (today's multiprocessing path). Two rates
per run: *end to end* (episodes / wall time of the eval, actor start and warm-up included)
and *steady* (episodes after the first n / the time between the n-th and the last record, so
start-up is left out). ``vs_linear`` is the steady rate over n x the 1-actor Ray steady rate.
Rows are appended to ``OUT/rows.jsonl`` as they finish; ``OUT/scaling.md`` is the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from experiments.evaluate import EvalConfig, evaluate
from experiments.ray_eval import ray_runner, ray_session

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "TabletopPickPlace-v0" / "seed0"


def _config(policy: str, n: int, episodes: int, seed: int, device: str) -> EvalConfig:
    if policy == "expert":
        return EvalConfig(policy="expert", episodes=episodes, seed=seed, workers=n)
    return EvalConfig(policy=str(SHIPPED), decoder=policy, episodes=episodes, seed=seed,
                      workers=n, device=device)


def _timed(runner: Any) -> tuple[Any, list[float]]:
    """Wrap an episode runner (``None``: the local pool) to note when each record arrives."""
    from experiments.evaluate import _run_all

    arrivals: list[float] = []

    def run(config: EvalConfig, out: Path, todo: list[int]):
        for record in (runner or _run_all)(config, out, todo):
            arrivals.append(time.perf_counter())
            yield record

    return run, arrivals


def measure(policy: str, n: int, path: str, out: Path, *, episodes_per_actor: int = 12,
            seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """One run: ``path`` is ``ray`` or ``local``; returns its row (rates in episodes/s)."""
    episodes = max(2, episodes_per_actor * n)
    config = _config(policy, n, episodes, seed, device)
    run, arrivals = _timed(ray_runner() if path == "ray" else None)
    tic = time.perf_counter()
    summary = evaluate(config, out / f"{policy}-{path}-{n}", progress=False, runner=run)
    wall = time.perf_counter() - tic
    first = min(n, episodes - 1)  # the n-th record; the steady rate counts those after it
    steady = (episodes - first) / max(arrivals[-1] - arrivals[first - 1], 1e-9)
    return {"policy": policy, "device": device, "path": path, "actors": n,
            "episodes": episodes, "end_to_end_eps": episodes / wall, "steady_eps": steady,
            "pc_success": summary["pc_success"], "wall_s": wall}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one line per policy and actor count, Ray beside the local pool."""
    base = {r["policy"]: r["steady_eps"] for r in rows if r["path"] == "ray" and r["actors"] == 1}
    by = {(r["policy"], r["actors"], r["path"]): r for r in rows}
    lines = ["| policy | actors | Ray ep/s steady | Ray ep/s end to end | linear ep/s | Ray vs "
             "linear | local pool ep/s steady | local pool ep/s end to end | success Ray = "
             "local |", "|---|---|---|---|---|---|---|---|---|"]
    for policy, n in sorted({(p, a) for p, a, _ in by}, key=lambda t: (t[0], t[1])):
        ray, local = by.get((policy, n, "ray")), by.get((policy, n, "local"))
        linear = base.get(policy, float("nan")) * n
        def num(r: dict | None, key: str) -> str:
            return "-" if r is None else f"{r[key]:.2f}"
        vs = "-" if ray is None else f"{100 * ray['steady_eps'] / linear:.0f}%"
        same = "-" if not (ray and local) else str(ray["pc_success"] == local["pc_success"])
        lines.append(f"| {policy} | {n} | {num(ray, 'steady_eps')} | "
                     f"{num(ray, 'end_to_end_eps')} | {linear:.2f} | {vs} | "
                     f"{num(local, 'steady_eps')} | {num(local, 'end_to_end_eps')} | {same} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the study (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Episodes/s of eval --ray with 1..N actors, "
                                     "against linear and the local pool.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=Path, help="Eval folders (default OUT/runs).")
    parser.add_argument("--policies", nargs="+", default=["expert", "oft", "ar"])
    parser.add_argument("--actors", nargs="+", type=int, default=[1, 2, 4, 8, 14])
    parser.add_argument("--episodes-per-actor", type=int, default=12)
    parser.add_argument("--device", default="cpu", help="Torch device of the VLA policies.")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="Stop starting runs after this many seconds.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    import ray

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
             log_to_driver=False)
    with ray_session():
        for n in args.actors:
            for policy in args.policies:
                for path in ("ray", "local"):
                    if time.perf_counter() - start > args.budget_s:
                        break
                    row = measure(policy, n, path, args.runs or args.out / "runs",
                                  episodes_per_actor=args.episodes_per_actor,
                                  device=args.device)
                    rows.append(row)
                    with (args.out / "rows.jsonl").open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    ray.shutdown()
    header = (f"machine: {platform.node()} ({os.cpu_count()} CPUs), python "
              f"{platform.python_version()}, ray {ray.__version__}\n\n")
    (args.out / "scaling.md").write_text(header + table(rows))
    print(header + table(rows))


if __name__ == "__main__":
    main()
