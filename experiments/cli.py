"""The ``robodecode`` command line: one typer app, commands registered by the packages they drive.

Usage: robodecode --help

Each package keeps its commands beside its code in a ``cli.py`` module exposing
``register(app, bench)``: ``app`` is the top-level typer app and ``bench`` the
``robodecode bench ...`` group. Heavy imports (torch, mujoco) belong inside the
command functions so that ``robodecode --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

# Explicit registry of the modules that contribute commands (no import-time scans).
COMMAND_MODULES: tuple[str, ...] = (
    "experiments.bench_decoding",
    "experiments.bench_envs",
    "experiments.bench_ltl",
    "experiments.bench_server",
    "experiments.bench_vla",
    "envs.cli",
    "vla.cli",
    "planners.cli",
    "experiments.eval_planner",
    "experiments.eval_loop",
    "policies.cli",
    "experiments.commands",
    "experiments.compare",
)


def build_app() -> typer.Typer:
    """Build the full typer app with every package's commands registered."""
    app = typer.Typer(
        name="robodecode",
        help="Decoding for robotics and agents: VLA action decoders and LTL-constrained planners.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    bench = typer.Typer(help="Benchmarks that print tables and write JSON with provenance.",
                        no_args_is_help=True)
    app.add_typer(bench, name="bench")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app, bench)
    return app


def main() -> None:
    """Entry point of the ``robodecode`` console script."""
    build_app()()


if __name__ == "__main__":
    main()
