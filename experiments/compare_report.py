"""Aggregate a comparison's eval runs into rows, paired tests, markdown, a rich table and a plot.

Usage: ``rows = [decoder_row(d, runs[d], k) for d in decoders]``; ``write_markdown(result, path)``

A *run* here is one ``experiments.evaluate`` summary (``eval_info.json``); a decoder has one run
per (training seed, condition), conditions being ``train`` (train instructions, no latency),
``heldout`` (held-out instructions) and ``latency`` (latency-aware, train instructions).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from experiments.stats import mcnemar, wilson_interval

CONDITIONS = ("train", "heldout", "latency")
TOKEN_BASELINE = "ar"
DISTILLED = "cjacobi+ee"
PARALLEL_FAMILIES = ("diffusion", "flow", "oft")

# The measured floor (shared/reference/anchors.md): GPT-2-shaped decoder, 4 layers d128 (the
# size of the default `cpu` preset), 2-core CPU, eager, batch 1: 32 single-token passes take
# 22.7 ms, one pass over the whole 32-token chunk 1.6 ms.
FLOOR_AR_MS = 22.7
FLOOR_CHUNK_PASS_MS = 1.6


def _pct(wins: int, n: int) -> float:
    return 100.0 * wins / n


def outcomes(run: dict[str, Any], train_seed: int) -> dict[tuple[int, int], bool]:
    """``{(training seed, env seed): success}`` of one run."""
    return {(train_seed, int(e["seed"])): bool(e["success"]) for e in run["per_episode"]}


def pooled(runs: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Pool one condition's runs over training seeds: successes, Wilson CI, per-seed values."""
    if not runs:
        return None
    wins = sum(r["n_success"] for r in runs.values())
    n = sum(r["episodes"] for r in runs.values())
    low, high = wilson_interval(wins, n)
    return {"pc_success": _pct(wins, n), "ci_low": 100 * low, "ci_high": 100 * high,
            "n_success": wins, "episodes": n,
            "per_seed": [{"train_seed": s, "pc_success": r["pc_success"],
                          "episodes": r["episodes"]} for s, r in sorted(runs.items())]}


def decoder_row(decoder: str, runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """One ``compare.json`` row from a decoder's runs (condition -> training seed -> summary).

    ``pc_success`` pools the ``train`` runs over training seeds; passes per chunk are the mean
    over every chunk of those runs, ms per chunk the median of the per-run medians, and
    ``hz = k * 1000 / ms_per_chunk``.
    """
    train = runs["train"]
    main = pooled(train)
    if main is None:
        raise ValueError(f"decoder {decoder!r} has no train-instruction runs")
    heldout, latency = pooled(runs.get("heldout", {})), pooled(runs.get("latency", {}))
    chunks = [(r["nfe_per_chunk"], r["n_chunks"]) for r in train.values()
              if r["nfe_per_chunk"] is not None]
    nfe = (sum(x * n for x, n in chunks) / sum(n for _, n in chunks)) if chunks else None
    ms = statistics.median(r["ms_per_chunk"] for r in train.values())
    dec_ms = [r.get("decode_ms_per_chunk") for r in train.values()]
    dec_ms = statistics.median(dec_ms) if all(x is not None for x in dec_ms) else None
    ks = {r["k"] for r in train.values() if isinstance(r["k"], int)}
    k = ks.pop() if len(ks) == 1 else None
    return {
        "decoder": decoder,
        "pc_success": main["pc_success"], "ci_low": main["ci_low"], "ci_high": main["ci_high"],
        "heldout_pc_success": heldout["pc_success"] if heldout else None,
        "latency_aware_pc_success": latency["pc_success"] if latency else None,
        "nfe_per_chunk": nfe, "ms_per_chunk": ms,
        "hz": k * 1000.0 / ms if (k and ms) else None,
        "episodes": main["episodes"], "k": k,
        "per_seed": [s["pc_success"] for s in main["per_seed"]],
        "decode_ms_per_chunk": dec_ms,
        "heldout_episodes": heldout["episodes"] if heldout else 0,
        "latency_episodes": latency["episodes"] if latency else 0,
        "latency_avg_delay_steps": (statistics.mean(r["avg_delay_steps"]
                                                    for r in runs["latency"].values())
                                    if latency else None),
        "per_seed_detail": main["per_seed"],
    }


def paired_test(name_a: str, name_b: str, runs: dict[str, dict[str, dict[int, Any]]]
                ) -> dict[str, Any]:
    """McNemar (mid-p) of two decoders over their shared (training seed, env seed) episodes."""
    a: dict[tuple[int, int], bool] = {}
    b: dict[tuple[int, int], bool] = {}
    for seed, run in runs[name_a]["train"].items():
        a.update(outcomes(run, seed))
    for seed, run in runs[name_b]["train"].items():
        b.update(outcomes(run, seed))
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError(f"{name_a} and {name_b} share no episode; a paired test needs both")
    res = mcnemar([a[x] for x in keys], [b[x] for x in keys])
    return {"a": name_a, "b": name_b, "pairs": res.n,
            "pc_success_a": _pct(sum(a[x] for x in keys), res.n),
            "pc_success_b": _pct(sum(b[x] for x in keys), res.n),
            "only_a": res.only_a, "only_b": res.only_b, "p_value": res.p_value,
            "method": f"McNemar {res.method}"}


def headline(rows: list[dict[str, Any]], runs: dict[str, Any]) -> dict[str, Any]:
    """Paired tests (AR vs cjacobi+ee, AR vs the best parallel head) and the floor ratio."""
    by = {r["decoder"]: r for r in rows}
    out: dict[str, Any] = {"tests": []}
    if TOKEN_BASELINE not in by:
        return out
    ar = by[TOKEN_BASELINE]
    if DISTILLED in by:
        cj = by[DISTILLED]
        out["tests"].append(paired_test(TOKEN_BASELINE, DISTILLED, runs))
        measured = cj["ms_per_chunk"] / ar["ms_per_chunk"]
        dec = (cj["decode_ms_per_chunk"] / ar["decode_ms_per_chunk"]
               if cj["decode_ms_per_chunk"] and ar["decode_ms_per_chunk"] else None)
        out["cjacobi_vs_ar"] = {
            "nfe_ratio": cj["nfe_per_chunk"] / ar["nfe_per_chunk"],
            "ms_ratio_measured": measured,
            "decode_ms_ratio_measured": dec,
            "ms_ratio_floor_predicted": cj["nfe_per_chunk"] * FLOOR_CHUNK_PASS_MS / FLOOR_AR_MS,
            "floor": (f"anchors.md measured floor, 4 layers d128, 2-core CPU: AR {FLOOR_AR_MS} ms "
                      f"(32 passes), one chunk pass {FLOOR_CHUNK_PASS_MS} ms; predicted decode "
                      "ratio = passes x 1.6 / 22.7"),
            "success_gap_points": cj["pc_success"] - ar["pc_success"],
        }
    parallel = [r for r in rows if r["decoder"].split("@")[0] in PARALLEL_FAMILIES]
    if parallel:
        best = max(parallel, key=lambda r: (r["pc_success"], -r["ms_per_chunk"]))
        out["best_parallel"] = best["decoder"]
        out["tests"].append(paired_test(TOKEN_BASELINE, best["decoder"], runs))
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one list per decoder, in :func:`columns` order."""
    gpu = any("gpu_eager_ms_per_chunk" in r for r in rows)
    return [[r["decoder"],
             f"{r['pc_success']:.1f} ({r['ci_low']:.1f}–{r['ci_high']:.1f})",
             _fmt(r["heldout_pc_success"], ".1f"), _fmt(r["nfe_per_chunk"], ".2f"),
             _fmt(r["ms_per_chunk"], ".2f"), _fmt(r["hz"], ".0f"),
             _fmt(r["latency_aware_pc_success"], ".1f")]
            + ([_fmt(r.get("gpu_eager_ms_per_chunk"), ".2f")] if gpu else []) for r in rows]


COLUMNS = ("decoder", "success % (95% CI)", "held-out instr. success", "passes / chunk",
           "ms / chunk", "Hz", "latency-aware success")


def columns(result: dict[str, Any]) -> tuple[str, ...]:
    """DESIGN.md's columns, plus the eager GPU ms when ``--gpu-timing`` measured them."""
    timing = result.get("gpu_timing")
    return COLUMNS + ((f"{timing['gpu']} eager ms / chunk",) if timing else ())


def print_table(result: dict[str, Any]) -> None:
    """Print the comparison as a rich table (plus the paired tests) to stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['env_id']}: {result['episodes_per_seed']} episodes x "
                        f"{len(result['seeds']['train'])} training seed(s), k={result['k']}")
    for col in columns(result):
        table.add_column(col, justify="left" if col == "decoder" else "right")
    for cells in table_rows(result["rows"]):
        table.add_row(*cells)
    console = Console()
    if console.width < 120:  # pipes and narrow terminals: keep the seven columns readable
        console = Console(width=120)
    console.print(table)
    for line in headline_lines(result):
        console.print(line, highlight=False)


def headline_lines(result: dict[str, Any]) -> list[str]:
    """Plain-text lines with the paired tests and the floor comparison."""
    lines = []
    for t in result["headline"].get("tests", []):
        lines.append(f"McNemar {t['a']} vs {t['b']}: {t['pc_success_a']:.1f}% vs "
                     f"{t['pc_success_b']:.1f}% on {t['pairs']} shared episodes, only "
                     f"{t['a']} {t['only_a']}, only {t['b']} {t['only_b']}, "
                     f"p={t['p_value']:.3g} ({t['method']})")
    cj = result["headline"].get("cjacobi_vs_ar")
    if cj:
        dec = cj["decode_ms_ratio_measured"]
        lines.append(f"cjacobi+ee vs ar: passes x{cj['nfe_ratio']:.3f}, ms x"
                     f"{cj['ms_ratio_measured']:.3f} end to end"
                     + (f", decoder alone x{dec:.3f}" if dec is not None else "")
                     + f"; the measured floor predicts x{cj['ms_ratio_floor_predicted']:.3f} "
                     "(decoder alone)")
    return lines


def requirement_lines(result: dict[str, Any]) -> list[str]:
    """PASS/FAIL of the issue's hard requirements that this table can check.

    "Within 3 points of AR" is read as non-inferiority: the student may be at most 3 points
    below AR (and not significantly below); a student above AR passes.
    """
    by = {r["decoder"]: r for r in result["rows"]}
    ar, cj = by.get(TOKEN_BASELINE), by.get(DISTILLED)
    if ar is None or cj is None:
        return ["needs both `ar` and `cjacobi+ee` rows"]
    test = next((t for t in result["headline"].get("tests", []) if t["b"] == DISTILLED), None)
    below = test is not None and test["only_a"] > test["only_b"] and test["p_value"] < 0.05
    ok = {True: "PASS", False: "FAIL"}
    ratio = cj["nfe_per_chunk"] / ar["nfe_per_chunk"]
    gap = cj["pc_success"] - ar["pc_success"]
    return [f"AR success >= 80%: {ok[ar['pc_success'] >= 80]} ({ar['pc_success']:.1f}%)",
            f"cjacobi+ee passes <= 1/4 of AR's: {ok[ratio <= 0.25]} (x{ratio:.3f}; aim 1/8)",
            f"cjacobi+ee success at most 3 points below AR and not significantly below: "
            f"{ok[gap >= -3 and not below]} ({gap:+.1f} points"
            + (f", McNemar p={test['p_value']:.3g})" if test else ")")
            + ("; meaningless while AR fails its own bar" if ar["pc_success"] < 80 else "")]


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """Write ``compare.md``: the table, the paired tests, the floor ratio and provenance."""
    prov = result["provenance"]
    lines = [f"# Decoder comparison on `{result['env_id']}`", "",
             f"Command: `{result['command']}`", "",
             f"{result['episodes_per_seed']} episodes per training seed "
             f"({', '.join(map(str, result['seeds']['train']))}); env seeds "
             f"{result['seeds']['describe']}; k = {result['k']} actions per chunk; latency-aware "
             f"mode: {result['latency']}. Success pools the training seeds (95% Wilson "
             "interval); ms per chunk is the median wall time of `Policy.infer` "
             f"({prov.get('torch_threads')} torch thread(s) per worker, CPU "
             f"{prov.get('cpu')}).", "",
             "| " + " | ".join(columns(result)) + " |", "|" + "---|" * len(columns(result))]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result["rows"])]
    timing = result.get("gpu_timing")
    if timing:
        lines += ["", f"Last column: {timing['label']} (`{timing['file']}`, same checkpoints, "
                      f"training seed {result['seeds']['train'][0]}; – where not measured)."]
    lines += ["", "Per training seed (success %): " + "; ".join(
        f"{r['decoder']} {', '.join(f'{x:.0f}' for x in r['per_seed'])}"
        for r in result["rows"]), ""]
    lines += [f"- {line}" for line in headline_lines(result)]
    lines += ["", "Issue requirements, checked on these numbers:", ""]
    lines += [f"- {line}" for line in requirement_lines(result)]
    lines += ["", f"![success vs latency]({result['plot']})", ""]
    if result.get("videos"):
        lines += ["Rollout videos (every decoder side by side on one episode of training seed "
                  f"{result['seeds']['train'][0]}; green frame = success, red = failure): "
                  + ", ".join(f"[seed {v['seed']}]({v['file']})" for v in result["videos"]),
                  ""]
    lines += [f"git {prov.get('git_sha')}, python {prov.get('python')}, torch "
              f"{prov.get('versions', {}).get('torch')}, {prov.get('cpu_count')} CPU cores."]
    path.write_text("\n".join(lines) + "\n")


def step_curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """Success against step count per iterative family: ``{"diffusion": [(steps, ms, %)]}``.

    Reads ``diffusion@T`` and ``flow@K`` rows (Euler only; ``flow@K:heun`` is another solver),
    sorted by steps; families with fewer than two step counts are left out.
    """
    curves: dict[str, list[tuple[int, float, float]]] = {}
    for r in rows:
        family, _, steps = r["decoder"].partition("@")
        if family in ("diffusion", "flow") and steps.isdigit():
            curves.setdefault(family, []).append((int(steps), r["ms_per_chunk"],
                                                  r["pc_success"]))
    return {f: sorted(c) for f, c in curves.items() if len(c) >= 2}


def _label_offset(logx: float, y: float, placed: list[tuple[float, float]]) -> int:
    """Vertical offset (points) of a point's label that keeps it off the labels already placed.

    Labels live in (log10 ms, success %) space; one is about 0.11 decades wide and 5 points of
    success tall on the figure. Appends the chosen label position to ``placed``.
    """
    def free(dy: int) -> bool:
        label_y = y + dy * 0.4
        return label_y <= 100 and all(abs(logx - px) > 0.11 or abs(label_y - py) > 4.5
                                      for px, py in placed)

    dy = next((d for d in (4, -12, 14, -22, 24, -32, -42) if free(d)), 4)
    placed.append((logx, y + dy * 0.4))
    return dy


def plot(result: dict[str, Any], path: Path) -> None:
    """Success (95% CI) and latency-aware success against ms per chunk, one point per decoder.

    With two or more step counts of diffusion or flow, a second panel draws success against the
    number of denoising / integration steps (where the iterative decoders fall off).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curves = step_curves(result["rows"])
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(11 if curves else 7, 4.5),
                             squeeze=False, gridspec_kw={"width_ratios": [7, 4] if curves
                                                         else [1]})
    ax = axes[0][0]
    placed: list[tuple[float, float]] = []
    for r in sorted(result["rows"], key=lambda r: r["ms_per_chunk"]):
        x, y = r["ms_per_chunk"], r["pc_success"]
        ax.errorbar([x], [y], yerr=[[y - r["ci_low"]], [r["ci_high"] - y]], fmt="o",
                    color="tab:blue", capsize=3)
        dy = _label_offset(math.log10(x), y, placed)
        ax.annotate(r["decoder"], (x, y), textcoords="offset points", xytext=(4, dy), fontsize=8,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5") if abs(dy) > 14 else None)
        if r["latency_aware_pc_success"] is not None:
            ax.plot([x], [r["latency_aware_pc_success"]], "x", color="tab:red")
    ax.plot([], [], "o", color="tab:blue", label="success (95% CI)")
    ax.plot([], [], "x", color="tab:red", label="latency-aware success")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ms per chunk (Policy.infer, median)")
    ax.set_ylabel("success %")
    ax.set_ylim(-3, 103)
    ax.set_title(result["env_id"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    if curves:
        steps_ax = axes[0][1]
        for family, points in curves.items():
            steps_ax.plot([p[0] for p in points], [p[2] for p in points], "o-", label=family)
        steps_ax.set_xscale("log", base=2)
        steps_ax.set_xticks(sorted({p[0] for c in curves.values() for p in c}))
        steps_ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        steps_ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        steps_ax.set_xlabel("denoising / Euler steps per chunk")
        steps_ax.set_ylabel("success %")
        steps_ax.set_ylim(-3, 103)
        steps_ax.set_title("success vs steps")
        steps_ax.grid(alpha=0.3)
        steps_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
