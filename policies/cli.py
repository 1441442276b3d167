"""Commands of ``policies`` for the ``robodecode`` CLI (see experiments/cli.py).

Usage: robodecode serve --policy experiments/checkpoints/TabletopPickPlace-v0/seed0 --decoder oft
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this package's commands to the top-level app and the ``bench`` group."""

    @app.command("serve")
    def serve_command(
        policy: Annotated[Path, typer.Option(help="A VLA checkpoint folder or checkpoint set.")],
        decoder: Annotated[str, typer.Option(
            help="Decoder spec: ar, jacobi, jacobi+ee, cjacobi+ee, diffusion@T, flow@K[:heun], "
                 "oft.")],
        host: Annotated[str, typer.Option(
            help="Interface to bind; 0.0.0.0 serves other machines too.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8000,
        device: Annotated[str, typer.Option(help="Torch device of the model.")] = "cpu",
        threads: Annotated[int, typer.Option(help="Torch CPU threads.")] = 1,
    ) -> None:
        """Serve a VLA policy over openpi's websocket protocol (openpi-client drives it)."""
        import logging

        import torch

        from policies.server import PolicyServer
        from policies.vla_policy import VLAPolicy

        if not 0 <= port <= 65535:
            raise typer.BadParameter(f"must be in 0..65535, got {port}", param_hint="--port")
        torch.set_num_threads(max(1, threads))
        try:
            served = VLAPolicy(policy, decoder, device=device)
        except ValueError as err:  # unknown spec, missing folder, wrong head: one line
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        try:
            server = PolicyServer(served, host=host, port=port)
        except OSError as err:
            typer.echo(f"error: cannot listen on {host}:{port}: {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"serving {decoder} from {served.path} on ws://{host}:{server.port} "
                   "(openpi protocol; Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
