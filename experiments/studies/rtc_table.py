"""python -m experiments.studies.rtc_table RUNS --out TABLE.md [--plot FIG.png]  # RTC vs latency.

Tabulates a real-time-chunking sweep: eval run folders named ``<decoder>-l<ms>[-rtc]`` (made
by ``robodecode eval ... --latency MS [--rtc] --out RUNS/<name>``, all on the same seeds), and
``<decoder>-lmeasured[-rtc]`` for ``--latency measured`` (each chunk delays by its own wall
time; the table and plot place it at the run's mean ms per chunk).
For each decoder and latency: success with its 95% Wilson interval, without and with RTC, and
McNemar's mid-p test of RTC against no RTC on the shared seeds (episodes only one of them
solved); passes and ms per chunk with RTC (frozen steps are not decoded); and the mean action
jump where a new chunk takes over (``avg_switch_jump``, in action units, and its ratio to the
jump between other steps, ``avg_step_jump``: 1x = a switch is as smooth as motion within a
chunk; steps that hold a chunk's last action while a late chunk decodes lower the latter),
without and with RTC, where the runs recorded it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from experiments.stats import mcnemar, pair_by_seed, wilson_interval

_NAME = re.compile(r"(?P<decoder>.+)-l(?P<ms>\d+|measured)(?P<rtc>-rtc)?\Z")
MEASURED = "measured"


def _order(key: tuple[str, int | str, bool]) -> tuple[str, float, bool]:
    """Sort runs by decoder, then latency (measured last), then without RTC first."""
    decoder, ms, rtc = key
    return decoder, float("inf") if ms == MEASURED else float(ms), rtc


def load_runs(runs: Path) -> dict[tuple[str, int | str, bool], dict]:
    """``(decoder, ms or "measured", rtc) -> {"seeds": {seed: success}, "summary": ...}``."""
    out = {}
    for folder in sorted(p for p in Path(runs).iterdir() if (p / "eval_info.json").is_file()):
        m = _NAME.match(folder.name)
        if not m:
            continue
        summary = json.loads((folder / "eval_info.json").read_text())
        seeds = {e["seed"]: bool(e["success"]) for e in summary["per_episode"]}
        ms = MEASURED if m["ms"] == MEASURED else int(m["ms"])
        out[(m["decoder"], ms, m["rtc"] is not None)] = {"seeds": seeds, "summary": summary}
    return out


def _cell(seeds: dict[int, bool]) -> str:
    k, n = sum(seeds.values()), len(seeds)
    low, high = wilson_interval(k, n)
    return f"{100 * k / n:.0f} ({100 * low:.0f}–{100 * high:.0f})"


def _jump(summary: dict) -> str:
    """Switch jump (and its ratio to the step jump), blank when the run did not record it."""
    switch, step = summary.get("avg_switch_jump"), summary.get("avg_step_jump")
    if switch is None:
        return ""
    return f"{switch:.3f}" + (f" ({switch / step:.1f}x)" if step else "")


def table(runs: dict[tuple[str, int, bool], dict]) -> str:
    """The markdown table (one row per decoder and latency)."""
    rows = ["| decoder | latency ms | success % without RTC | with RTC | RTC vs not (only RTC / "
            "only without, mid-p) | passes / chunk with RTC | ms / chunk with RTC | switch "
            "jump (x step jump) without RTC | with RTC |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (decoder, ms, rtc), run in sorted(runs.items(), key=lambda item: _order(item[0])):
        if rtc:
            continue
        with_rtc = runs.get((decoder, ms, True))
        if ms == MEASURED:
            ms = f"measured ({run['summary']['ms_per_chunk']:.0f})"
        if with_rtc is None:
            rows.append(f"| {decoder} | {ms} | {_cell(run['seeds'])} | | | | | "
                        f"{_jump(run['summary'])} | |")
            continue
        a, b = pair_by_seed(with_rtc["seeds"], run["seeds"])
        test = mcnemar(a, b)
        s = with_rtc["summary"]
        rows.append(f"| {decoder} | {ms} | {_cell(run['seeds'])} | {_cell(with_rtc['seeds'])} "
                    f"| {test.only_a} / {test.only_b}, p = {test.p_value:.2g} "
                    f"| {s['nfe_per_chunk']:.2f} | {s['ms_per_chunk']:.1f} "
                    f"| {_jump(run['summary'])} | {_jump(s)} |")
    return "\n".join(rows) + "\n"


def plot(runs: dict[tuple[str, int, bool], dict], path: Path) -> None:
    """Success (95% Wilson interval) against latency, one panel per decoder, RTC dashed.

    Measured-latency runs are stars at their mean ms per chunk, not joined to the lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decoders = sorted({d for d, _, _ in runs})
    fig, axes = plt.subplots(1, len(decoders), figsize=(3.2 * len(decoders), 3.2),
                             sharey=True, squeeze=False)
    for ax, decoder in zip(axes[0], decoders, strict=True):
        for rtc, style in ((False, "-o"), (True, "--s")):
            cells = sorted((ms, run["seeds"]) for (d, ms, r), run in runs.items()
                           if d == decoder and ms != MEASURED
                           and (r == rtc or (ms == 0 and not r)))
            if not cells or (rtc and len(cells) < 2):
                continue
            xs = [ms for ms, _ in cells]
            pcs, lows, highs = [], [], []
            for _, seeds in cells:
                k, n = sum(seeds.values()), len(seeds)
                low, high = wilson_interval(k, n)
                pcs.append(100 * k / n)
                lows.append(100 * (k / n - low))
                highs.append(100 * (high - k / n))
            line = ax.errorbar(xs, pcs, yerr=[lows, highs], fmt=style, capsize=3,
                               label="RTC" if rtc else "no RTC")
            measured = runs.get((decoder, MEASURED, rtc))
            if measured is not None:
                k, n = sum(measured["seeds"].values()), len(measured["seeds"])
                ax.plot([measured["summary"]["ms_per_chunk"]], [100 * k / n], "*", ms=11,
                        color=line[0].get_color(), label=f"measured{' + RTC' if rtc else ''}")
        ax.set_title(decoder)
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success % (95% CI)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, help="folder of eval runs named <decoder>-l<ms>[-rtc]")
    p.add_argument("--out", type=Path, help="write the table here too")
    p.add_argument("--plot", type=Path, help="write the success-vs-latency figure here")
    args = p.parse_args(argv)
    runs = load_runs(args.runs)
    text = table(runs)
    print(text)
    if args.plot:
        plot(runs, args.plot)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
