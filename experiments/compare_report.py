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
        "heldout_ci_low": heldout["ci_low"] if heldout else None,
        "heldout_ci_high": heldout["ci_high"] if heldout else None,
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
        "pools_train_seeds": sorted(train),
        "per_seed_detail": seed_detail(runs),
    }


def seed_detail(runs: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per training seed: every condition's success and that seed's passes and ms.

    The pooled row hides differences between training seeds (one set may ship, the others
    not); these entries keep each seed's own train, held-out and latency-aware success, its
    passes per chunk and its ms per chunk, so a seed's numbers can be reported on their own.
    """
    detail = []
    for seed, run in sorted(runs["train"].items()):
        entry: dict[str, Any] = {"train_seed": seed, "pc_success": run["pc_success"],
                                 "n_success": run["n_success"], "episodes": run["episodes"],
                                 "nfe_per_chunk": run["nfe_per_chunk"],
                                 "ms_per_chunk": run["ms_per_chunk"],
                                 "decode_ms_per_chunk": run.get("decode_ms_per_chunk")}
        for cond, key in (("heldout", "heldout"), ("latency", "latency_aware")):
            other = runs.get(cond, {}).get(seed)
            entry[f"{key}_pc_success"] = other["pc_success"] if other else None
            entry[f"{key}_n_success"] = other["n_success"] if other else None
            entry[f"{key}_episodes"] = other["episodes"] if other else 0
        detail.append(entry)
    return detail


def paired_test(name_a: str, name_b: str, runs: dict[str, dict[str, dict[int, Any]]],
                condition: str = "train") -> dict[str, Any]:
    """McNemar (mid-p) of two decoders over their shared (training seed, env seed) episodes.

    Args:
        name_a: First decoder.
        name_b: Second decoder.
        runs: ``runs[decoder][condition][training seed] = summary`` (``per_episode`` read).
        condition: Which condition's episodes to pair (``train``, ``heldout``, ``latency``).
    """
    a: dict[tuple[int, int], bool] = {}
    b: dict[tuple[int, int], bool] = {}
    for seed, run in runs[name_a].get(condition, {}).items():
        a.update(outcomes(run, seed))
    for seed, run in runs[name_b].get(condition, {}).items():
        b.update(outcomes(run, seed))
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError(f"{name_a} and {name_b} share no {condition} episode; a paired test "
                         "needs both")
    res = mcnemar([a[x] for x in keys], [b[x] for x in keys])
    return {"a": name_a, "b": name_b, "condition": condition, "pairs": res.n,
            "pc_success_a": _pct(sum(a[x] for x in keys), res.n),
            "pc_success_b": _pct(sum(b[x] for x in keys), res.n),
            "only_a": res.only_a, "only_b": res.only_b, "p_value": res.p_value,
            "method": f"McNemar {res.method}"}


def vs_baseline(decoders: list[str], runs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every decoder against AR, per condition that both have (McNemar mid-p, shared episodes).

    Returns:
        ``{condition: [paired_test(ar, decoder, runs, condition), ...]}`` (AR itself left out).
    """
    if TOKEN_BASELINE not in decoders:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for cond in CONDITIONS:
        if not runs[TOKEN_BASELINE].get(cond):
            continue
        tests = [paired_test(TOKEN_BASELINE, d, runs, cond) for d in decoders
                 if d != TOKEN_BASELINE and runs[d].get(cond)]
        if tests:
            out[cond] = tests
    return out


def runs_from_episodes(result: dict[str, Any]) -> dict[str, Any]:
    """``runs[decoder][condition][training seed]`` with ``per_episode`` only, from compare.json.

    Enough for :func:`paired_test` and :func:`vs_baseline` when the eval runs themselves are
    gone (a results folder rebuilt from its ``compare.json``).
    """
    return {d: {c: {int(s): {"per_episode": [{"seed": e, "success": bool(x)} for e, x in eps]}
                    for s, eps in by_seed.items()} for c, by_seed in by_cond.items()}
            for d, by_cond in result["episodes"].items()}


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
    out["vs_ar"] = vs_baseline([r["decoder"] for r in rows], runs)
    return out


def seed_success(result: dict[str, Any], decoder: str, condition: str,
                 seed: int) -> dict[str, Any] | None:
    """One training seed's success in one condition, from ``compare.json``'s episode records.

    Returns:
        ``{"pc_success", "ci_low", "ci_high", "n_success", "episodes"}`` (95% Wilson), or None
        when that seed has no episodes of ``condition``.
    """
    eps = result["episodes"].get(decoder, {}).get(condition, {}).get(str(seed))
    if not eps:
        return None
    wins, n = sum(int(x) for _, x in eps), len(eps)
    low, high = wilson_interval(wins, n)
    return {"pc_success": _pct(wins, n), "ci_low": 100 * low, "ci_high": 100 * high,
            "n_success": wins, "episodes": n}


def agreement(result: dict[str, Any], rerun: dict[str, Any], seed: int) -> dict[str, Any]:
    """Per decoder and condition: how many of ``seed``'s episodes a rerun decided the same way.

    Only env seeds present in both files count (a rerun of the same seeds, e.g. on another
    machine, should agree on all of them if evaluation is bit-reproducible there).
    """
    out: dict[str, Any] = {}
    for d, by_cond in rerun["episodes"].items():
        for cond, by_seed in by_cond.items():
            mine = dict(map(tuple, result["episodes"].get(d, {}).get(cond, {}).get(str(seed),
                                                                                   [])))
            theirs = dict(map(tuple, by_seed.get(str(seed), [])))
            shared = sorted(set(mine) & set(theirs))
            if shared:
                out.setdefault(d, {})[cond] = {
                    "episodes": len(shared),
                    "same": sum(mine[e] == theirs[e] for e in shared),
                    "pc_success_here": _pct(sum(mine[e] for e in shared), len(shared)),
                    "pc_success_rerun": _pct(sum(theirs[e] for e in shared), len(shared))}
    return out


def shipped_section(result: dict[str, Any], seed: int, folder: str,
                    rerun: dict[str, Any] | None = None,
                    rerun_file: str | None = None) -> dict[str, Any]:
    """The shipped set's own numbers inside a comparison that pools several training seeds.

    Success (train, held-out, latency-aware) is ``seed``'s part of the pooled episodes, so it
    comes from the same machine and env seeds as the pooled columns. Passes per chunk are that
    seed's own (``per_seed_detail``); where the pooled file predates them, they come from
    ``rerun``, a comparison of the shipped set alone on the same env seeds (its agreement with
    the pooled episodes is recorded).

    Args:
        result: The pooled ``compare.json`` object.
        seed: The training seed whose checkpoint set is the shipped one.
        folder: The shipped checkpoint set (for the label).
        rerun: Optional ``compare.json`` of the shipped set alone (training seed ``seed``).
        rerun_file: Where ``rerun`` lives, relative to the results folder (for the label).
    """
    rerun_rows = {r["decoder"]: r for r in (rerun or {}).get("rows", [])}
    rows = []
    for r in result["rows"]:
        d = r["decoder"]
        own = next((x for x in r.get("per_seed_detail", []) if x.get("train_seed") == seed), {})
        nfe, source = own.get("nfe_per_chunk"), "this run"
        if nfe is None and d in rerun_rows:
            nfe, source = rerun_rows[d]["nfe_per_chunk"], rerun_file or "rerun"
        cells = {c: seed_success(result, d, c, seed) for c in CONDITIONS}
        if cells["train"] is None:
            continue
        rows.append({"decoder": d, **cells["train"],
                     "heldout": cells["heldout"], "latency": cells["latency"],
                     "nfe_per_chunk": nfe, "nfe_source": source if nfe is not None else None})
    runs = runs_from_episodes({"episodes": {
        d: {c: {str(seed): by_seed[str(seed)]} for c, by_seed in by_cond.items()
            if str(seed) in by_seed} for d, by_cond in result["episodes"].items()}})
    return {"train_seed": seed, "checkpoints": folder,
            "pooled_checkpoints": result.get("checkpoints", {}),
            "label": f"shipped set only: training seed {seed} ({folder}), its part of the "
                     "pooled episodes",
            "rows": rows, "vs_ar": vs_baseline([r["decoder"] for r in rows], runs),
            "rerun": ({"file": rerun_file, "command": rerun.get("command"),
                       "provenance": rerun.get("provenance"),
                       "agreement": agreement(result, rerun, seed)} if rerun else None)}


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _heldout_cell(r: dict[str, Any]) -> str:
    if r["heldout_pc_success"] is None or r.get("heldout_ci_low") is None:
        return _fmt(r["heldout_pc_success"], ".1f")
    return f"{r['heldout_pc_success']:.1f} ({r['heldout_ci_low']:.1f}–{r['heldout_ci_high']:.1f})"


def fill_heldout_ci(result: dict[str, Any]) -> None:
    """Add the held-out 95% Wilson interval to rows of a ``compare.json`` that predates it."""
    for r in result["rows"]:
        eps = [x for by in result["episodes"].get(r["decoder"], {}).get("heldout", {}).values()
               for _, x in by]
        if eps and r.get("heldout_ci_low") is None:
            low, high = wilson_interval(sum(int(x) for x in eps), len(eps))
            r["heldout_ci_low"], r["heldout_ci_high"] = 100 * low, 100 * high


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one list per decoder, in :func:`columns` order."""
    gpu = any("gpu_eager_ms_per_chunk" in r for r in rows)
    return [[r["decoder"],
             f"{r['pc_success']:.1f} ({r['ci_low']:.1f}–{r['ci_high']:.1f})",
             _heldout_cell(r), _fmt(r["nfe_per_chunk"], ".2f"),
             _fmt(r["ms_per_chunk"], ".2f"), _fmt(r["hz"], ".0f"),
             _fmt(r["latency_aware_pc_success"], ".1f")]
            + ([_fmt(r.get("gpu_eager_ms_per_chunk"), ".2f")] if gpu else []) for r in rows]


COLUMNS = ("decoder", "success % (95% CI)", "held-out instr. success (95% CI)",
           "passes / chunk", "ms / chunk", "Hz", "latency-aware success")


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


CONDITION_NAMES = {"train": "train instr.", "heldout": "held-out instr.",
                   "latency": "latency-aware"}


def pool_line(result: dict[str, Any]) -> str:
    """Which checkpoint sets the table pools, and which of them ship (one sentence)."""
    sets = result.get("checkpoints") or {}
    if not sets:
        return ""
    shipped = result.get("shipped")
    ship_seed = shipped["train_seed"] if shipped else None
    parts = []
    for seed in result["seeds"]["train"]:
        where = sets.get(str(seed), "?")
        tag = (f"same weights as the shipped `{shipped['checkpoints']}`" if seed == ship_seed
               else "not shipped" if shipped else None)
        parts.append(f"training seed {seed} = `{where}`" + (f" ({tag})" if tag else ""))
    lead = ("Pooled over " if len(parts) > 1 else "Checkpoints: ")
    return lead + "; ".join(parts) + "."


def _cell(x: dict[str, Any] | None, ci: bool = False) -> str:
    if x is None:
        return "–"
    return (f"{x['pc_success']:.1f} ({x['ci_low']:.1f}–{x['ci_high']:.1f})" if ci
            else f"{x['pc_success']:.1f}")


def shipped_lines(result: dict[str, Any]) -> list[str]:
    """Markdown of the shipped set's own table (only when the run pools several seeds)."""
    shipped = result.get("shipped")
    if not shipped or len(result["seeds"]["train"]) < 2:
        return []
    seed = shipped["train_seed"]
    n = {r["episodes"] for r in shipped["rows"]}
    lines = ["", f"## Shipped set only (training seed {seed}, `{shipped['checkpoints']}`)", "",
             f"The table above pools {len(result['seeds']['train'])} training seeds; only seed "
             f"{seed} ships. Its own numbers, from its part of the same episodes "
             f"({', '.join(map(str, sorted(n)))} per condition, same machine and env seeds):",
             "", "| decoder | success % (95% CI) | held-out instr. success (95% CI) | passes / "
             "chunk | latency-aware success |", "|---|---|---|---|---|"]
    for r in shipped["rows"]:
        lines.append(f"| {r['decoder']} | {_cell(r, ci=True)} | {_cell(r['heldout'], ci=True)} | "
                     f"{_fmt(r['nfe_per_chunk'], '.2f')} | {_cell(r['latency'])} |")
    sources = sorted({r["nfe_source"] for r in shipped["rows"] if r["nfe_source"]})
    rerun = shipped.get("rerun")
    if sources and sources != ["this run"]:
        lines += ["", f"Passes per chunk of the shipped set from `{', '.join(sources)}` "
                      "(its own run on the same env seeds; this file predates per-seed passes)."]
    if rerun and rerun.get("agreement"):
        cpu = (rerun.get("provenance") or {}).get("cpu")
        lines += ["", f"That rerun (`{rerun['command']}`, CPU {cpu}) and this run decided the "
                      "same shared episodes alike: " + agreement_text(rerun["agreement"])
                  + f"; success there is in `{rerun['file']}`."]
    lines += vs_ar_lines(shipped.get("vs_ar", {}), f"shipped set (training seed {seed})")
    return lines


def agreement_text(agree: dict[str, Any]) -> str:
    """``agreement()`` in words: fixed-latency conditions first, latency-aware apart.

    Latency-aware episodes depend on the machine's measured ms per chunk, so two machines are
    not expected to agree on them; train and held-out episodes would agree where evaluation is
    bit-reproducible across the two machines.
    """
    parts = []
    for label, conds in (("train and held-out", ("train", "heldout")),
                         ("latency-aware (machine-dependent)", ("latency",))):
        cells = [(d, c, x) for d, by in agree.items() for c, x in by.items() if c in conds]
        if not cells:
            continue
        same = sum(x["same"] for *_, x in cells)
        total = sum(x["episodes"] for *_, x in cells)
        d, c, x = min(cells, key=lambda t: t[2]["same"] / t[2]["episodes"])
        parts.append(f"{label} {same} of {total} (least: {d} {c}, {x['same']} of "
                     f"{x['episodes']})")
    return "; ".join(parts)


def vs_ar_lines(tests: dict[str, list[dict[str, Any]]], what: str) -> list[str]:
    """A table of every decoder against AR per condition (McNemar mid-p on shared episodes)."""
    if not tests:
        return []
    conds = [c for c in CONDITIONS if c in tests]
    decoders = list(dict.fromkeys(t["b"] for c in conds for t in tests[c]))
    by = {(t["condition"], t["b"]): t for c in conds for t in tests[c]}
    lines = ["", f"Against `{TOKEN_BASELINE}`, {what} (McNemar mid-p on the shared episodes; "
                 "% AR vs %, only AR / only the other):", "",
             "| decoder | " + " | ".join(CONDITION_NAMES[c] for c in conds) + " |",
             "|---|" + "---|" * len(conds)]
    for d in decoders:
        cells = []
        for c in conds:
            t = by.get((c, d))
            cells.append("–" if t is None else
                         f"{t['pc_success_a']:.1f} vs {t['pc_success_b']:.1f} ({t['only_a']} / "
                         f"{t['only_b']}, p = {t['p_value']:.2g}, n = {t['pairs']})")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


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
             f"{prov.get('cpu')}).", "", *([pool_line(result), ""] if pool_line(result) else []),
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
    lines += vs_ar_lines(result["headline"].get("vs_ar", {}),
                         "every training seed pooled" if len(result["seeds"]["train"]) > 1
                         else f"training seed {result['seeds']['train'][0]}")
    lines += ["", "Issue requirements, checked on these numbers:", ""]
    lines += [f"- {line}" for line in requirement_lines(result)]
    lines += ["", f"![success vs latency]({result['plot']})", ""]
    if result.get("videos"):
        lines += ["Rollout videos (every decoder side by side on one episode of training seed "
                  f"{result['seeds']['train'][0]}; green frame = success, red = failure): "
                  + ", ".join(f"[seed {v['seed']}]({v['file']})" for v in result["videos"]),
                  ""]
    shipped = shipped_lines(result)
    lines += shipped[1:] + ([""] if shipped else [])  # the lines before end with a blank one
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
