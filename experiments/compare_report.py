"""A comparison in words: ``compare.md`` and the terminal table.

Usage: ``write_markdown(result, Path("compare.md"))``; ``print_table(result)``

``result`` is a ``compare.json`` object (rows, paired tests and the shipped set's own numbers
come from :mod:`experiments.compare_rows` and :mod:`experiments.compare_shipped`; the figure
from :mod:`experiments.compare_plot`). The names tests and scripts import from here before
the split (``decoder_row``, ``headline``, ``plot``, ...) are re-exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.compare_config import CONDITIONS
from experiments.compare_plot import plot, step_curves
from experiments.compare_rows import (
    DISTILLED,
    TOKEN_BASELINE,
    decoder_row,
    fill_heldout_ci,
    headline,
    paired_test,
    runs_from_episodes,
    vs_baseline,
)
from experiments.compare_shipped import agreement, shipped_section

__all__ = ["COLUMNS", "agreement", "check_lines", "columns", "decoder_row", "fill_heldout_ci",
           "headline", "headline_lines", "paired_test", "plot", "print_table", "runs_from_episodes",
           "shipped_section", "step_curves", "table_rows", "vs_ar_lines", "vs_baseline",
           "write_markdown"]


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _heldout_cell(r: dict[str, Any]) -> str:
    if r["heldout_pc_success"] is None or r.get("heldout_ci_low") is None:
        return _fmt(r["heldout_pc_success"], ".1f")
    return f"{r['heldout_pc_success']:.1f} ({r['heldout_ci_low']:.1f}–{r['heldout_ci_high']:.1f})"


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one list per decoder, in :func:`columns` order."""
    gpu = any("gpu_eager_ms_per_chunk" in r for r in rows)
    rtc = any("rtc_pc_success" in r for r in rows)
    return [[r["decoder"],
             f"{r['pc_success']:.1f} ({r['ci_low']:.1f}–{r['ci_high']:.1f})",
             _heldout_cell(r), _fmt(r["nfe_per_chunk"], ".2f"),
             _fmt(r["ms_per_chunk"], ".2f"), _fmt(r["hz"], ".0f"),
             _fmt(r["latency_aware_pc_success"], ".1f")]
            + ([_fmt(r.get("rtc_pc_success"), ".1f")] if rtc else [])
            + ([_fmt(r.get("gpu_eager_ms_per_chunk"), ".2f")] if gpu else []) for r in rows]


COLUMNS = ("decoder", "success % (95% CI)", "held-out instr. success (95% CI)",
           "passes / chunk", "ms / chunk", "Hz", "latency-aware success")


def columns(result: dict[str, Any]) -> tuple[str, ...]:
    """DESIGN.md's columns, plus RTC success and the eager GPU ms when they were measured."""
    timing = result.get("gpu_timing")
    rtc = any("rtc_pc_success" in r for r in result["rows"])
    return (COLUMNS + (("latency-aware + RTC success",) if rtc else ())
            + ((f"{timing['gpu']} eager ms / chunk",) if timing else ()))


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


def check_lines(result: dict[str, Any]) -> list[str]:
    """The distilled decoder against AR in plain statements (empty without both rows).

    AR's success (80% or more makes it a usable baseline), the student's share of AR's passes
    per chunk, and its success gap with the paired test; "within 3 points of AR" reads as
    non-inferiority: at most 3 points below AR and not significantly below.
    """
    by = {r["decoder"]: r for r in result["rows"]}
    ar, cj = by.get(TOKEN_BASELINE), by.get(DISTILLED)
    if ar is None or cj is None:
        return []
    test = next((t for t in result["headline"].get("tests", []) if t["b"] == DISTILLED), None)
    significant = test is not None and test["p_value"] < 0.05
    ratio = cj["nfe_per_chunk"] / ar["nfe_per_chunk"]
    gap = cj["pc_success"] - ar["pc_success"]
    if gap >= 0:
        verdict = "significantly above AR" if significant and test["only_b"] > test["only_a"] \
            else "no significant difference"
    elif significant and test["only_a"] > test["only_b"]:
        verdict = "significantly below AR"
    else:
        verdict = ("within 3 points of AR and not significantly below" if gap >= -3
                   else "more than 3 points below AR")
    share = f"1/{1 / ratio:.0f}" if ratio <= 0.5 else f"{ratio:.2f}"
    usable = ("80% or more: a usable baseline" if ar["pc_success"] >= 80
              else "below 80%: the comparisons with it say little")
    return [f"AR succeeds in {ar['pc_success']:.1f}% of episodes ({usable}).",
            f"{DISTILLED} takes {share} of AR's passes per chunk (x{ratio:.3f}).",
            f"{DISTILLED} succeeds {abs(gap):.1f} points {'above' if gap >= 0 else 'below'} AR"
            + (f" (McNemar p={test['p_value']:.3g})" if test else "") + f": {verdict}."]


CONDITION_NAMES = {"train": "train instr.", "heldout": "held-out instr.",
                   "latency": "latency-aware", "rtc": "latency-aware + RTC"}


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


def machines_text(result: dict[str, Any]) -> str:
    """Where the episodes ran: ``result["machines"]`` in words, or the report's own CPU.

    A comparison written before episodes named their machine falls back to the CPU of the
    process that wrote it (which then also ran the episodes, unless they were taken over).
    """
    machines = result.get("machines")
    if not machines:
        return f"CPU {result['provenance'].get('cpu')}"
    return "episodes ran on " + "; ".join(f"{m} ({n})" for m, n in machines.items())


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
             f"({prov.get('torch_threads')} torch thread(s) per worker; {machines_text(result)}"
             ").", "", *([pool_line(result), ""] if pool_line(result) else []),
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
    checks = check_lines(result)
    lines += ["", "Checks on these numbers:", "", *(f"- {line}" for line in checks)] if checks \
        else []
    lines += ["", f"![success vs latency]({result['plot']})", ""]
    if result.get("videos"):
        lines += ["Rollout videos (every decoder side by side on one episode of training seed "
                  f"{result['seeds']['train'][0]}; green frame = success, red = failure): "
                  + ", ".join(f"[seed {v['seed']}]({v['file']})" for v in result["videos"]),
                  ""]
    shipped = shipped_lines(result)
    lines += shipped[1:] + ([""] if shipped else [])  # the lines before end with a blank one
    lines += [f"Written with git {prov.get('git_sha')}, python {prov.get('python')}, torch "
              f"{prov.get('versions', {}).get('torch')}, {prov.get('cpu_count')} CPU cores."]
    path.write_text("\n".join(lines) + "\n")
