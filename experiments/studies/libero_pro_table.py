"""python -m experiments.studies.libero_pro_table COMPARES... --out T.md [--plot F.png]  # PRO.

LIBERO-PRO robustness table: how much each decoder loses when LIBERO-PRO perturbs the scene,
the objects, the positions, the task or the language of the suite it was trained on.

Reads ``compare.json`` files written by ``robodecode compare`` on one suite and on LIBERO-PRO's
perturbed copies of it (``robodecode/LIBERO-Object-v0`` and ``robodecode/LIBERO-PRO-Object-
<Perturbation>-v0``, same checkpoints, same env seeds). Env seed ``s`` is task ``s % 10`` from
official initial state ``s // 10`` in every copy, so a seed pairs the same task and the same
initial-state index (each copy has its own 50 states). For each decoder and perturbation: success
with its 95% Wilson interval, the change against the unperturbed suite on the shared seeds, and
McNemar's mid-p test on those seeds (episodes only one of the two solved). ``--plot`` draws the
grouped bars with the Wilson intervals; ``--published`` adds the anchors' published LIBERO
success (averaged over four suites; billion-parameter pretrained backbones fine-tuned on LIBERO's
human demonstrations) as a grey group of bars, for scale, not as a like-for-like comparison.

``--labels A B ...`` (one per comparison) names the columns instead of the perturbations: the
same table for comparisons of one env under different checkpoints (heads trained longer, on
other demos), paired against the first comparison on the same env seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from experiments.stats import mcnemar, pair_by_seed, wilson_interval

BASE = "none"
PUBLISHED = {  # LIBERO success averaged over its four suites, the authors' numbers
    "OpenVLA-OFT": 97.1,  # (shared/reference/anchors.md)
    "pi0.5": 96.9,
    "Discrete Diffusion VLA": 96.3,
    "OpenVLA": 76.5,
}


def perturbation_of(env_id: str) -> str:
    """``"swap"`` for ``robodecode/LIBERO-PRO-Object-Swap-v0``, ``"none"`` for a plain suite."""
    name = env_id.split("/")[-1].removesuffix("-v0")
    return name.rsplit("-", 1)[1].lower() if name.startswith("LIBERO-PRO-") else BASE


def load(paths: list[Path], labels: list[str] | None = None
         ) -> tuple[str, dict[str, dict[str, dict[int, bool]]], dict[str, Any]]:
    """Read the comparisons.

    Args:
        paths: ``compare.json`` files.
        labels: One column name per file instead of its perturbation; the first file is then
            the paired baseline (keyed ``BASE``).

    Returns:
        The suite label, ``outcomes[perturbation][decoder] = {seed: success}`` and
        ``rows[perturbation][decoder]`` (the comparison's row: passes, ms per chunk).

    Raises:
        ValueError: If two files are the same perturbation (or label), the labels do not match
            the files, the suites differ, or none is the unperturbed suite.
    """
    if labels is not None and (len(labels) != len(paths) or len(set(labels)) != len(labels)):
        raise ValueError(f"give one distinct label per comparison, got {labels} for "
                         f"{len(paths)} files")
    outcomes: dict[str, dict[str, dict[int, bool]]] = {}
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    suites = set()
    for i, path in enumerate(paths):
        data = json.loads(Path(path).read_text())
        pert = perturbation_of(data["env_id"]) if labels is None else (
            BASE if i == 0 else labels[i])
        suites.add(data["env_id"].split("/")[-1].replace("PRO-", "").split("-")[1])
        if pert in outcomes:
            raise ValueError(f"two comparisons of perturbation {pert!r} ({path})")
        outcomes[pert] = {dec: {int(s): bool(ok) for seed_runs in by_cond["train"].values()
                                for s, ok in seed_runs}
                          for dec, by_cond in data["episodes"].items()}
        rows[pert] = {r["decoder"]: r for r in data["rows"]}
    if len(suites) != 1:
        raise ValueError(f"the comparisons are of different suites: {sorted(suites)}")
    if BASE not in outcomes:
        raise ValueError("one comparison must be of the unperturbed suite (the paired baseline)")
    return suites.pop(), outcomes, rows


def _order(outcomes: dict[str, Any]) -> list[str]:
    return [BASE, *sorted(p for p in outcomes if p != BASE)]


def summarize(outcomes: dict[str, dict[str, dict[int, bool]]]) -> dict[str, dict[str, dict]]:
    """Return ``cells[decoder][perturbation]`` on the seeds every run shares.

    A cell holds successes, episodes, percent and Wilson interval and, for perturbations, the
    paired change against the unperturbed suite (points) and McNemar's mid-p.
    """
    decoders = list(outcomes[BASE])
    seeds = set.intersection(*(set(outcomes[p][d]) for p in outcomes for d in outcomes[p]))
    cells: dict[str, dict[str, dict]] = {}
    for dec in decoders:
        cells[dec] = {}
        for pert in _order(outcomes):
            if dec not in outcomes[pert]:
                continue
            runs = {s: ok for s, ok in outcomes[pert][dec].items() if s in seeds}
            k, n = sum(runs.values()), len(runs)
            low, high = wilson_interval(k, n)
            cell = {"successes": k, "episodes": n, "pc": 100.0 * k / n,
                    "ci": [100.0 * low, 100.0 * high]}
            if pert != BASE:
                a, b = pair_by_seed(outcomes[BASE][dec], runs)
                test = mcnemar(a, b)
                cell.update(delta=100.0 * (sum(b) - sum(a)) / len(a), p=test.p_value,
                            only_base=test.only_a, only_perturbed=test.only_b)
            cells[dec][pert] = cell
    return cells


def markdown(suite: str, cells: dict[str, dict[str, dict]], rows: dict[str, Any],
             base_label: str | None = None) -> str:
    """The table: one row per decoder, one column per perturbation (or labelled comparison)."""
    perts = _order(next(iter(cells.values())))
    n = next(iter(cells.values()))[BASE]["episodes"]
    base = base_label or f"LIBERO-{suite}"
    head = ["decoder", base, *perts[1:], f"passes / chunk ({base_label or 'unperturbed'})"]
    paired = (f"; other columns: change against {base} in points, McNemar mid-p"
              if len(perts) > 1 else "")
    lines = [f"Success % (95% Wilson), {n} {'paired ' if paired else ''}episodes per "
             f"cell{paired}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dec, by_pert in cells.items():
        out = [dec]
        for pert in perts:
            c = by_pert.get(pert)
            if c is None:
                out.append("-")
                continue
            text = f"{c['pc']:.0f} ({c['ci'][0]:.0f}–{c['ci'][1]:.0f})"
            if pert != BASE:
                text += f" {c['delta']:+.0f}, p={c['p']:.2g}"
            out.append(text)
        nfe = rows[BASE].get(dec, {}).get("nfe_per_chunk")
        out.append("-" if nfe is None else f"{nfe:.2f}")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def task_table(suite: str, outcomes: dict[str, dict[int, bool]]) -> str:
    """Successes per task (rows) and decoder (columns) of one comparison.

    Env seed ``s`` is task ``s % 10`` of the suite in LIBERO's order (``LiberoSuiteEnv``).

    Raises:
        ValueError: If no suite of ``envs.libero_tasks.SUITES`` has the label ``suite``.
    """
    from envs.libero_tasks import SUITES, task_id_name

    tasks = next((s.tasks for s in SUITES.values() if s.label == suite), None)
    if tasks is None:
        raise ValueError(f"no LIBERO suite is labelled {suite!r}")
    decoders = list(outcomes)
    lines = ["| task | " + " | ".join(decoders) + " |", "|" + "---|" * (len(decoders) + 1)]
    for i, task in enumerate((*tasks, None)):
        cells = []
        for dec in decoders:
            runs = [ok for seed, ok in outcomes[dec].items() if task is None
                    or seed % len(tasks) == i]
            cells.append(f"{sum(runs)}/{len(runs)}")
        name = "**all**" if task is None else task_id_name(task)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(suite: str, cells: dict[str, dict[str, dict]], path: Path,
         published: dict[str, float] | None = None, base_label: str | None = None) -> None:
    """Grouped bars: success per perturbation (groups) and decoder (bars), Wilson whiskers.

    ``published``: ``{label: success %}`` (e.g. ``PUBLISHED``), drawn as one more group of
    grey bars, each named inside its bar.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    perts = _order(next(iter(cells.values())))
    decoders = list(cells)
    width = 0.8 / len(decoders)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(perts) + 3), 3.8))
    for i, dec in enumerate(decoders):
        xs, ys, lo, hi = [], [], [], []
        for j, pert in enumerate(perts):
            c = cells[dec].get(pert)
            if c is None:
                continue
            xs.append(j + (i - (len(decoders) - 1) / 2) * width)
            ys.append(c["pc"])
            lo.append(c["pc"] - c["ci"][0])
            hi.append(c["ci"][1] - c["pc"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=dec)
    groups = [(base_label or f"LIBERO-{suite}") if p == BASE else p for p in perts]
    if published:  # one more group: the anchors' numbers, grey, named inside their bars
        names = sorted(published, key=lambda k: -published[k])
        step = 0.8 / len(names)
        for i, name in enumerate(names):
            x = len(perts) + (i - (len(names) - 1) / 2) * step
            ax.bar(x, published[name], step, color="0.85", edgecolor="0.5", hatch="//")
            ax.text(x, 3, f"{name} {published[name]:g}", rotation=90, ha="center",
                    va="bottom", fontsize=7)
        groups.append("published\n(4-suite avg.)")
    ax.set_xticks(np.arange(len(groups)), groups, fontsize=8)
    n = cells[decoders[0]][BASE]["episodes"]
    ax.set_ylabel(f"success % ({n} episodes, 95% Wilson)")
    ax.set_ylim(0, 105)
    what = (f"LIBERO-{suite}" if base_label or len(perts) == 1
            else f"LIBERO-PRO perturbations of LIBERO-{suite}")
    ax.set_title(f"{what}: one backbone, {len(decoders)} decoders", fontsize=10)
    ax.legend(fontsize=8, ncols=len(decoders), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("compares", nargs="+", type=Path, help="compare.json files (one unperturbed)")
    p.add_argument("--out", type=Path, required=True, help="Markdown table to write")
    p.add_argument("--plot", type=Path, help="PNG of the grouped bars")
    p.add_argument("--published", action="store_true",
                   help="Draw the anchors' published LIBERO averages on the plot")
    p.add_argument("--labels", nargs="+",
                   help="Column names, one per comparison (the first is the paired baseline)")
    p.add_argument("--per-task", action="store_true",
                   help="Add each comparison's successes per task and decoder")
    args = p.parse_args(argv)
    suite, outcomes, rows = load(args.compares, args.labels)
    cells = summarize(outcomes)
    base_label = args.labels[0] if args.labels else None
    text = markdown(suite, cells, rows, base_label)
    if args.per_task:
        for key in _order(outcomes):
            name = base_label if key == BASE and base_label else key
            text += f"\n{'LIBERO-' + suite if name == BASE else name}, per task:\n\n"
            text += task_table(suite, outcomes[key])
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"suite": suite, "sources": [str(c) for c in args.compares], "labels": args.labels,
         "cells": cells}, indent=1) + "\n")
    if args.plot:
        plot(suite, cells, args.plot, PUBLISHED if args.published else None, base_label)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
