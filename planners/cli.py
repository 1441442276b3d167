"""Commands of ``planners`` for the ``robodecode`` CLI (see experiments/cli.py).

The result files are written here (with ``experiments.provenance``), in the CLI layer, so
the planner library itself imports nothing of ``experiments``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this package's commands to the top-level app and the ``bench`` group."""

    @app.command("train-planner-lm")
    def train_planner_lm(
        domain: Annotated[str, typer.Option(help="drone_nav or blocks_world")] = "drone_nav",
        out: Annotated[Path | None, typer.Option(
            help="Output folder (default scratch/planner_lm/<domain>; the shipped ones are "
                 "planners/default_lm/<domain>)")] = None,
        tasks: Annotated[int, typer.Option(help="Training tasks (one example each)")] = 6000,
        steps: Annotated[int, typer.Option(help="Optimizer steps")] = 1500,
        batch_size: Annotated[int, typer.Option(help="Sequences per step")] = 32,
        n_layer: Annotated[int, typer.Option(help="GPT-2 layers")] = 4,
        n_embd: Annotated[int, typer.Option(help="GPT-2 width")] = 128,
        vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size")] = 1024,
        imperfect: Annotated[float, typer.Option(help="Share of imperfect plans")] = 0.3,
        seed: Annotated[int, typer.Option(help="Seed")] = 0,
        threads: Annotated[int, typer.Option(help="torch CPU threads")] = 2,
    ) -> None:
        """Train a small GPT-2 planner LM (own BPE tokenizer) on generated (task -> plan) text."""
        import json
        import sys

        from envs.symbolic import make_domain
        from planners.lm_training import PlannerLMConfig
        from planners.lm_training import train_planner_lm as train

        make_domain(domain)
        cfg = PlannerLMConfig(domain=domain, tasks=tasks, steps=steps, batch_size=batch_size,
                              n_layer=n_layer, n_embd=n_embd, vocab_size=vocab_size,
                              imperfect=imperfect, seed=seed, threads=threads)
        out = out or Path("scratch") / "planner_lm" / domain
        summary = train(cfg, out)
        summary["command"] = " ".join(["robodecode", *sys.argv[1:]])
        (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
        typer.echo(f"saved {out} (final loss {summary['final_loss']:.3f}, "
                   f"{summary['seconds']:.0f}s)")

    @app.command("eval-planner")
    def eval_planner(
        domain: Annotated[str, typer.Option(help="drone_nav or blocks_world")] = "drone_nav",
        tasks: Annotated[int, typer.Option(help="Number of generated tasks N")] = 50,
        seed: Annotated[int, typer.Option(help="Task seed S")] = 0,
        split: Annotated[str, typer.Option(help="train or heldout")] = "train",
        model: Annotated[Path | None, typer.Option(
            help="LM folder (default: the shipped planners/default_lm/<domain>)")] = None,
        sample: Annotated[bool, typer.Option(help="Sample (T=1) instead of greedy")] = False,
        out: Annotated[Path | None, typer.Option(
            help="Output folder (default scratch/planner_eval; committed results: "
                 "experiments/results/planner)")] = None,
        threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    ) -> None:
        """Compare unconstrained, LTL-constrained and SELP-style decoding on generated tasks."""
        import torch

        from planners.evaluate import evaluate

        torch.set_num_threads(threads)
        result = evaluate(domain, tasks, seed, split, model_dir=model, sample=sample)
        paths = write_results(result, out or Path("scratch") / "planner_eval", threads=threads)
        typer.echo(result["markdown"])
        typer.echo(f"wrote {', '.join(str(p) for p in paths)}")


def write_results(result: dict[str, Any], out: Path, threads: int) -> list[Path]:
    """Write ``<domain>_<split>_seed<seed>[_sampled].json`` (with provenance) and ``.md``."""
    from experiments.provenance import provenance, write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['domain']}_{result['split']}_seed{result['seed']}"
    if result["decoding"].startswith("sampling"):
        stem += "_sampled"
    js, md = out / f"{stem}.json", out / f"{stem}.md"
    write_json_atomic(js, {**result, "provenance": provenance(threads=threads)})
    md.write_text(result["markdown"] + "\n\nCPU timings are noisy (shared 2-core machine, "
                  f"{threads} torch thread(s)).\n")
    return [js, md]
