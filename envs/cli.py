"""Commands of ``envs`` for the ``robodecode`` CLI (see experiments/cli.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this package's commands to the top-level app and the ``bench`` group."""
    # --- demonstrations (dataset helper): robodecode collect, body in envs/collect_cli.py ---
    from envs.collect_cli import register_collect

    register_collect(app)
    # --- end demonstrations ---
