"""NL -> LTL translation accuracy: greedy vs equivalence voting, free vs grammar-constrained.

Usage: ``robodecode eval-nl2ltl --translator planners/default_lm/nl2ltl --tasks 50 --out
scratch/nl2ltl_eval``

Sets per domain: generated train-split tasks (templates the translator was trained on),
held-out-split tasks (held-out templates and, for drone_nav, the unseen ``museum`` layout), the
held-out layout alone (drone_nav ``museum`` tasks) and the hand-written phrasings no template
generates (``envs/symbolic/data/phrasings_<domain>.json``). A translation is right when it is
DFA-equivalent to the ground truth over the domain's letters. Each set is decoded four ways:
one greedy sample and a k-sample vote, each without and with the formula-grammar constraint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from envs.symbolic import generate_tasks
from experiments.provenance import provenance, write_json_atomic
from experiments.stats import wilson_interval

MODES = ("free", "constrained")


def translation_accuracy(translator, items) -> dict[str, Any]:
    """Greedy vs voted translation accuracy over ``(instruction, truth, domain)`` items."""
    from planners.nl2ltl import same

    greedy = voted = unparsed = 0
    rows = []
    t0 = time.perf_counter()
    for text, truth, domain in items:
        g = translator.greedy(text, domain)
        try:
            g_ok = same(g, truth, domain)
        except ValueError:  # unparsable greedy text
            g_ok = False
        v = translator.translate(text, domain)
        v_ok = v.matches(truth, domain)
        greedy, voted, unparsed = greedy + g_ok, voted + v_ok, unparsed + (v.formula is None)
        rows.append({"instruction": text, "truth": truth, "greedy": g, "greedy_ok": g_ok,
                     "voted": v.formula, "votes": v.votes, "dropped": v.dropped,
                     "voted_ok": v_ok})
    n = max(len(rows), 1)
    return {"n": len(rows), "greedy": greedy / n, "voted": voted / n,
            "greedy_ci95": wilson_interval(greedy, len(rows)),
            "voted_ci95": wilson_interval(voted, len(rows)), "no_sample_parsed": unparsed,
            "seconds_per_item": (time.perf_counter() - t0) / n, "rows": rows}


def item_sets(name: str, tasks: int, seed: int) -> dict[str, list[tuple]]:
    """The evaluation sets of a domain as ``(instruction, truth, domain)`` lists."""
    from envs.symbolic import BlocksWorld, DroneNav
    from envs.symbolic.instructions import heldout_phrasings

    def items(ts):
        return [(t.instruction, t.ltl, t.domain) for t in ts]

    sets = {"train tasks": items(generate_tasks(name, tasks, seed=seed, split="train")),
            "held-out tasks": items(generate_tasks(name, tasks, seed=seed, split="heldout"))}
    if name == "drone_nav":
        pool = generate_tasks(name, 8 * tasks, seed=seed + 1, split="heldout")
        sets["held-out layout"] = items([t for t in pool if t.info["layout"] == "museum"]
                                        [:tasks])
    sets["hand-written"] = [(r["instruction"], r["ltl"], DroneNav(r["layout"])
                             if name == "drone_nav" else BlocksWorld())
                            for r in heldout_phrasings(name)]
    return sets


def evaluate_translator(path: Path, tasks: int = 50, seed: int = 0, modes=MODES,
                        log=print) -> dict[str, Any]:
    """Accuracy of the translator at ``path`` on every set, per decoding mode."""
    import torch

    from planners.nl2ltl import Translator

    base = Translator.load(path)
    result: dict[str, Any] = {"translator": str(path), "k": base.k,
                              "temperature": base.temperature, "tasks": tasks, "seed": seed}
    lines = ["| domain | set | n | mode | greedy % (95% CI) | voted k=10 % (95% CI) | "
             "no sample parsed |", "|---|---|---|---|---|---|---|"]
    for name in ("drone_nav", "blocks_world"):
        for label, items in item_sets(name, tasks, seed).items():
            for mode in modes:
                tr = Translator(base.model, base.tokenizer, k=base.k,
                                temperature=base.temperature, constrained=mode == "constrained")
                torch.manual_seed(seed)
                acc = translation_accuracy(tr, items)
                result[f"{name}/{label}/{mode}"] = acc
                g, v = acc["greedy_ci95"], acc["voted_ci95"]
                lines.append(f"| {name} | {label} | {acc['n']} | {mode} | "
                             f"{100 * acc['greedy']:.0f} ({100 * g[0]:.0f}-{100 * g[1]:.0f}) | "
                             f"{100 * acc['voted']:.0f} ({100 * v[0]:.0f}-{100 * v[1]:.0f}) | "
                             f"{acc['no_sample_parsed']} |")
                log(lines[-1])
    result["markdown"] = "\n".join(lines)
    return result


def register(app: typer.Typer) -> None:
    """Add ``robodecode eval-nl2ltl``."""

    @app.command("eval-nl2ltl")
    def eval_nl2ltl(
        translator: Annotated[Path, typer.Option(help="Translator LM folder")] = Path(
            "planners/default_lm/nl2ltl"),
        tasks: Annotated[int, typer.Option(help="Generated tasks per set and domain")] = 50,
        seed: Annotated[int, typer.Option(help="Task and sampling seed")] = 0,
        modes: Annotated[str, typer.Option(
            help="Comma-separated decoding modes of free, constrained")] = "free,constrained",
        out: Annotated[Path, typer.Option(help="Output folder")] = Path("scratch/nl2ltl_eval"),
    ) -> None:
        """Greedy vs equivalence-voted NL -> LTL accuracy, free and grammar-constrained."""
        import torch

        names = tuple(m.strip() for m in modes.split(",") if m.strip())
        unknown = [m for m in names if m not in MODES]
        if unknown:
            raise typer.BadParameter(f"unknown modes {unknown}; known: {', '.join(MODES)}")
        torch.set_num_threads(1)
        result = evaluate_translator(translator, tasks, seed, names, log=lambda *a: None)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "nl2ltl.json", {**result, "provenance": provenance(threads=1)})
        (out / "nl2ltl.md").write_text(result["markdown"] + "\n")
        typer.echo(result["markdown"])
