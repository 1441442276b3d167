"""Commands of ``planners`` for the ``robodecode`` CLI (see experiments/cli.py).

Usage: robodecode train-planner-lm --domain blocks_world --out scratch/planner_lm/blocks_world
(and ``robodecode train-nl2ltl --out scratch/nl2ltl`` for the NL -> LTL translator)

``robodecode eval-planner`` (which writes result files) lives in :mod:`experiments.eval_planner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from decoding.threads import DEFAULT_CPU_THREADS


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``train-planner-lm`` and ``train-nl2ltl`` to the top-level app."""

    @app.command("train-planner-lm")
    def train_planner_lm(
        domain: Annotated[str, typer.Option(
            help="drone_nav, blocks_world or tabletop_rearrange")] = "drone_nav",
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
        threads: Annotated[int, typer.Option(help="torch CPU threads")] = DEFAULT_CPU_THREADS,
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

    @app.command("train-nl2ltl")
    def train_nl2ltl(
        out: Annotated[Path, typer.Option(
            help="Output folder (the shipped translator is planners/default_lm/nl2ltl)")] =
            Path("scratch") / "nl2ltl",
        pairs: Annotated[int, typer.Option(min=0, help="Template pairs per domain")] = 6000,
        paraphrases: Annotated[int, typer.Option(
            min=0, help="Composed paraphrase pairs per domain")] = 0,
        split: Annotated[str, typer.Option(
            help="Paraphrase phrase-table split: all, train or dev")] = "all",
        steps: Annotated[int, typer.Option(min=1, help="Optimizer steps")] = 1500,
        batch_size: Annotated[int, typer.Option(help="Sequences per step")] = 48,
        n_layer: Annotated[int, typer.Option(help="GPT-2 layers")] = 3,
        n_embd: Annotated[int, typer.Option(help="GPT-2 width")] = 96,
        vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size")] = 400,
        lr: Annotated[float, typer.Option(help="Peak learning rate")] = 3e-3,
        seed: Annotated[int, typer.Option(help="Seed")] = 0,
        threads: Annotated[int, typer.Option(help="torch CPU threads")] = DEFAULT_CPU_THREADS,
    ) -> None:
        """Train the NL -> LTL translator LM on generated, lifted instruction/formula pairs."""
        import json
        import sys

        from planners.nl2ltl_training import TranslatorConfig, train

        cfg = TranslatorConfig(pairs=pairs, paraphrases=paraphrases, split=split, steps=steps,
                               batch_size=batch_size, n_layer=n_layer, n_embd=n_embd,
                               vocab_size=vocab_size, lr=lr, seed=seed, threads=threads)
        summary = train(out, cfg, log=lambda *a: None)
        summary["command"] = " ".join(["robodecode", *sys.argv[1:]])
        (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
        typer.echo(json.dumps(summary, indent=2, default=str))
