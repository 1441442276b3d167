"""A comparison's numbers: eval runs pooled into table rows, paired tests and the headline.

Usage: ``rows = [decoder_row(d, runs[d]) for d in decoders]``; ``headline(rows, runs)``

A *run* here is one ``experiments.evaluate`` summary (``eval_info.json``); a decoder has one run
per (training seed, condition), conditions being ``train`` (train instructions, no latency),
``heldout`` (held-out instructions) and ``latency`` (latency-aware, train instructions).
Everything here is arithmetic on those summaries (or on ``compare.json``'s episode records);
the report files are written by :mod:`experiments.compare_report`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from experiments.compare_config import CONDITIONS
from experiments.stats import mcnemar, wilson_interval
from vla.decoders import DecoderSpec, parse_decoder_spec

TOKEN_BASELINE = "ar"
"""The decoder every other one is tested against (greedy autoregressive tokens)."""
DISTILLED = str(DecoderSpec(family="cjacobi", early_exit=True))
"""The consistency-distilled decoder the headline compares with AR."""

# The measured floor (shared/reference/anchors.md): GPT-2-shaped decoder, 4 layers d128 (the
# size of the default `cpu` preset), 2-core CPU, eager, batch 1: 32 single-token passes take
# 22.7 ms, one pass over the whole 32-token chunk 1.6 ms.
FLOOR_AR_MS = 22.7
FLOOR_CHUNK_PASS_MS = 1.6


def pct(wins: int, n: int) -> float:
    """``wins`` out of ``n`` in percent."""
    return 100.0 * wins / n


def success_cell(wins: int, n: int) -> dict[str, Any]:
    """``{"pc_success", "ci_low", "ci_high", "n_success", "episodes"}`` (95% Wilson, in %)."""
    low, high = wilson_interval(wins, n)
    return {"pc_success": pct(wins, n), "ci_low": 100 * low, "ci_high": 100 * high,
            "n_success": wins, "episodes": n}


def is_parallel(decoder: str) -> bool:
    """Whether ``decoder`` runs a parallel head (not the token baseline's head)."""
    return parse_decoder_spec(decoder).head != parse_decoder_spec(TOKEN_BASELINE).head


def outcomes(run: dict[str, Any], train_seed: int) -> dict[tuple[int, int], bool]:
    """``{(training seed, env seed): success}`` of one run."""
    return {(train_seed, int(e["seed"])): bool(e["success"]) for e in run["per_episode"]}


def pooled(runs: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Pool one condition's runs over training seeds: successes, Wilson CI, per-seed values."""
    if not runs:
        return None
    wins = sum(r["n_success"] for r in runs.values())
    n = sum(r["episodes"] for r in runs.values())
    return {**success_cell(wins, n),
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
    rtc = pooled(runs.get("rtc", {}))
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
        **({"rtc_pc_success": rtc["pc_success"], "rtc_episodes": rtc["episodes"]} if rtc else {}),
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
        for cond, key in (("heldout", "heldout"), ("latency", "latency_aware"), ("rtc", "rtc")):
            if cond == "rtc" and not runs.get("rtc"):
                continue
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
            "pc_success_a": pct(sum(a[x] for x in keys), res.n),
            "pc_success_b": pct(sum(b[x] for x in keys), res.n),
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


def machines_of(runs: dict[str, Any]) -> dict[str, int]:
    """Episodes per machine over every run (``runs[decoder][condition][seed]`` summaries).

    A summary written before summaries counted machines adds its episodes as not recorded;
    those come last, the machines named before them by episodes.
    """
    from experiments.eval_summary import NOT_RECORDED

    total: Counter[str] = Counter()
    for by_cond in runs.values():
        for by_seed in by_cond.values():
            for summary in by_seed.values():
                total.update(summary.get("machines") or {NOT_RECORDED: summary["episodes"]})
    return dict(sorted(total.items(), key=lambda kv: (kv[0] == NOT_RECORDED, -kv[1])))


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
    parallel = [r for r in rows if is_parallel(r["decoder"])]
    if parallel:
        best = max(parallel, key=lambda r: (r["pc_success"], -r["ms_per_chunk"]))
        out["best_parallel"] = best["decoder"]
        out["tests"].append(paired_test(TOKEN_BASELINE, best["decoder"], runs))
    out["vs_ar"] = vs_baseline([r["decoder"] for r in rows], runs)
    return out


def fill_heldout_ci(result: dict[str, Any]) -> None:
    """Add the held-out 95% Wilson interval to rows of a ``compare.json`` that predates it."""
    for r in result["rows"]:
        eps = [x for by in result["episodes"].get(r["decoder"], {}).get("heldout", {}).values()
               for _, x in by]
        if eps and r.get("heldout_ci_low") is None:
            low, high = wilson_interval(sum(int(x) for x in eps), len(eps))
            r["heldout_ci_low"], r["heldout_ci_high"] = 100 * low, 100 * high
