"""The comparison's figure: success against ms per chunk, and success against steps.

Usage: ``plot(result, Path("compare.png"))`` with ``result`` a ``compare.json`` object
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vla.decoders import DecoderSpec, parse_decoder_spec


def step_curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """Success against step count per iterative family: ``{"diffusion": [(steps, ms, %)]}``.

    Reads the rows of stepped decoders (``DecoderSpec.steps``: diffusion steps, flow Euler steps;
    another solver than the family's default is left out), sorted by steps; families with fewer
    than two step counts are left out.
    """
    curves: dict[str, list[tuple[int, float, float]]] = {}
    for r in rows:
        spec = parse_decoder_spec(r["decoder"])
        default_solver = spec == DecoderSpec(spec.family, spec.early_exit, spec.steps)
        if spec.steps is not None and default_solver:
            curves.setdefault(spec.family, []).append((spec.steps, r["ms_per_chunk"],
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
