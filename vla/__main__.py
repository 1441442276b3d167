"""``python -m vla``: the VLA commands alone (train, distill, info, bench vla).

Usage: python -m vla train --head ar --data DATA --out CKPT

Same commands as ``robodecode`` registers from ``vla.cli``, for machines where only this
package's dependencies are present (e.g. a GPU box without the simulator stack).
"""

from __future__ import annotations

import typer

from vla.cli import register


def main() -> None:
    """Build the typer app with the ``vla`` commands and run it."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)
    bench = typer.Typer(no_args_is_help=True, help="Benchmarks.")
    app.add_typer(bench, name="bench")
    register(app, bench)
    app()


if __name__ == "__main__":
    main()
