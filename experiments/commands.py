"""Commands of ``experiments`` (evaluation, comparison) for the ``robodecode`` CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add the evaluation and comparison commands to the top-level app."""
