"""The comparison's figure: success against ms per chunk, and success against steps.

Usage: ``plot(result, Path("compare.png"))`` with ``result`` a ``compare.json`` object

Decoders of one plot family (:attr:`vla.decoders.DecoderSpec.plot_family`: AR, diffusion,
flow, oft) share a colour; the y axis spans the data and their 95% intervals, not 0-100%; each
point's name goes to the first place around it where it covers no other name, point or error
bar (measured on the rendered figure), with a leader line when it had to move away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla.decoders import DecoderSpec, families, parse_decoder_spec

LABEL_PLACES = ((5, 0, "left"), (-5, 0, "right"), (0, 9, "center"), (0, -9, "center"),
                (5, 9, "left"), (5, -9, "left"), (-5, 9, "right"), (-5, -9, "right"),
                (0, 18, "center"), (0, -18, "center"), (12, 20, "left"), (12, -20, "left"),
                (-12, 20, "right"), (-12, -20, "right"), (0, 28, "center"), (0, -28, "center"),
                (16, 32, "left"), (16, -32, "left"), (-16, 32, "right"), (-16, -32, "right"))
"""Where a point's name may go, tried in order: (dx, dy) in points from the point, alignment."""


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


def family_colours() -> dict[str, str]:
    """One colour per plot family, in registry order (AR, diffusion, flow, oft, ...)."""
    order = list(dict.fromkeys(DecoderSpec(name, steps=fam.steps).plot_family
                               for name, (_, fam) in families().items()))
    return {f: f"C{i % 10}" for i, f in enumerate(order)}


def y_limits(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Success-axis range spanning every interval and latency-aware point, with a margin."""
    values = [v for r in rows for v in (r["ci_low"], r["ci_high"], r["pc_success"],
                                         r.get("latency_aware_pc_success")) if v is not None]
    low, high = min(values), max(values)
    pad = max(2.0, 0.08 * (high - low))
    return max(-2.0, low - pad), min(102.0, high + pad)


def place_labels(ax: Any, points: list[tuple[float, float, str]],
                 obstacles: list[Any], fontsize: float = 8) -> list[Any]:
    """Annotate each ``(x, y, name)`` where its text overlaps nothing placed before it.

    Args:
        ax: A drawn axes (its layout final: labels are placed in pixels).
        points: Data coordinates and names, labelled in this order.
        obstacles: Display-space ``Bbox`` es the names must keep off (markers, error bars).
        fontsize: Font size of the names.

    A name that fits nowhere takes the place where it covers the fewest things.

    Returns:
        The annotations, one per point.
    """
    from matplotlib.text import Text

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = list(obstacles)
    out = []
    for x, y, name in points:
        best = None  # (overlaps, annotation, text box)
        for dx, dy, align in LABEL_PLACES:
            far = abs(dx) > 5 or abs(dy) > 9
            ann = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points",
                              ha=align, va="center", fontsize=fontsize,
                              arrowprops=dict(arrowstyle="-", lw=0.5, color="0.55",
                                              shrinkA=0, shrinkB=3) if far else None)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).expanded(1.04, 1.15)  # the text alone
            inside = (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                      and box.y1 <= frame.y1)
            hits = sum(box.overlaps(other) for other in taken) + (0 if inside else 100)
            if best is None or hits < best[0]:
                if best is not None:
                    best[1].remove()
                best = (hits, ann, box)
            else:
                ann.remove()
            if hits == 0:
                break
        taken.append(best[2])
        out.append(best[1])
    return out


def _marker_boxes(ax: Any, rows: list[dict[str, Any]], px: float) -> list[Any]:
    """Display-space boxes of every marker and error bar of ``rows`` (``px`` pixels per point)."""
    from matplotlib.transforms import Bbox

    boxes = []
    for r in rows:
        x, y = ax.transData.transform((r["ms_per_chunk"], r["pc_success"]))
        _, low = ax.transData.transform((r["ms_per_chunk"], r["ci_low"]))
        _, high = ax.transData.transform((r["ms_per_chunk"], r["ci_high"]))
        boxes.append(Bbox([[x - 3.5 * px, low - px], [x + 3.5 * px, high + px]]))
        if r.get("latency_aware_pc_success") is not None:
            _, ly = ax.transData.transform((r["ms_per_chunk"], r["latency_aware_pc_success"]))
            boxes.append(Bbox([[x - 3.5 * px, ly - 3.5 * px], [x + 3.5 * px, ly + 3.5 * px]]))
    return boxes


def plot(result: dict[str, Any], path: Path) -> None:
    """Success (95% CI) and latency-aware success against ms per chunk, one point per decoder.

    With two or more step counts of diffusion or flow, a second panel draws success against the
    number of denoising / integration steps (where the iterative decoders fall off).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    rows = sorted(result["rows"], key=lambda r: r["ms_per_chunk"])
    colours = family_colours()
    family = {r["decoder"]: parse_decoder_spec(r["decoder"]).plot_family for r in rows}
    curves = step_curves(rows)
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(11 if curves else 7, 5),
                             squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": [7, 4] if curves else [1]})
    ax = axes[0][0]
    for r in rows:
        x, y, colour = r["ms_per_chunk"], r["pc_success"], colours[family[r["decoder"]]]
        ax.errorbar([x], [y], yerr=[[y - r["ci_low"]], [r["ci_high"] - y]], fmt="o",
                    color=colour, capsize=3, ms=5)
        if r["latency_aware_pc_success"] is not None:
            ax.plot([x], [r["latency_aware_pc_success"]], "x", color=colour, ms=6)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    low = min(r["ms_per_chunk"] for r in rows)
    high = max(r["ms_per_chunk"] for r in rows)
    ax.set_xlim(low / 1.25, high * 1.25)  # room for the names of the outermost points
    ax.set_xlabel("ms per chunk (Policy.infer, median)")
    ax.set_ylabel("success %")
    ax.set_ylim(*y_limits(rows))
    ax.set_title(result["env_id"])
    ax.grid(alpha=0.3)
    shown = list(dict.fromkeys(family[r["decoder"]] for r in result["rows"]))
    handles = ([Line2D([], [], color=colours[f], marker="o", ls="", label=f) for f in shown]
               + [Line2D([], [], color="0.3", marker="o", ls="", label="success (95% CI)"),
                  Line2D([], [], color="0.3", marker="x", ls="", label="latency-aware")])
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    if curves:
        steps_ax = axes[0][1]
        by = {r["decoder"]: r for r in rows}
        for name, points in curves.items():
            colour = colours[DecoderSpec(name, steps=points[0][0]).plot_family]
            pairs = [(p, by[str(DecoderSpec(name, steps=p[0]))]) for p in points]
            steps_ax.errorbar([p[0] for p in points], [p[2] for p in points],
                              yerr=[[p[2] - c["ci_low"] for p, c in pairs],
                                    [c["ci_high"] - p[2] for p, c in pairs]],
                              fmt="o-", color=colour, capsize=3, ms=5, label=name)
        steps_ax.set_xscale("log", base=2)
        steps_ax.set_xticks(sorted({p[0] for c in curves.values() for p in c}))
        steps_ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        steps_ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        steps_ax.set_xlabel("denoising / Euler steps per chunk")
        steps_ax.set_title("success vs steps")
        steps_ax.grid(alpha=0.3)
        steps_ax.tick_params(labelleft=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.canvas.draw()  # the layout is final: names are placed in pixels from here on
    px = fig.dpi / 72
    place_labels(ax, [(r["ms_per_chunk"], r["pc_success"], r["decoder"]) for r in rows],
                 _marker_boxes(ax, rows, px))
    fig.savefig(path, dpi=120)
    plt.close(fig)
