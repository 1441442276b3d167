"""Decoding benchmark: passes and ms per token of each decoder on a tiny GPT-2.

Usage: robodecode bench decoding
"""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench decoding``."""
