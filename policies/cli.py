"""Commands of ``policies`` for the ``robodecode`` CLI (see experiments/cli.py).

Usage: robodecode serve --policy experiments/checkpoints/TabletopPickPlace-v0/seed0 --decoder oft
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from policies.batching import BATCH_WINDOW_MS, MAX_BATCH
from policies.server import API_KEY_ENV


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
        api_key: Annotated[str | None, typer.Option(
            envvar=API_KEY_ENV, show_default=False,
            help="Require 'Authorization: Api-Key <key>' (openpi-client's api_key=); prefer "
                 "the environment variable, which ps does not show.")] = None,
        allow_origin: Annotated[list[str] | None, typer.Option(
            help="Accept handshakes from this browser Origin (repeatable); any other Origin "
                 "header is refused.")] = None,
        idle_timeout: Annotated[float, typer.Option(
            help="Close a connection after this many seconds without a request.")] = 300.0,
        send_timeout: Annotated[float, typer.Option(
            help="Close a connection whose client has not read a reply within this many "
                 "seconds.")] = 10.0,
        max_clients: Annotated[int, typer.Option(help="Connections served at once.")] = 64,
        max_clients_per_ip: Annotated[int, typer.Option(
            help="Connections served at once to one client address.")] = 16,
        batch_window_ms: Annotated[float, typer.Option(
            help="Longest wait (ms) of a request for others to join its batch; 0 batches "
                 "only what is already queued.")] = BATCH_WINDOW_MS,
        max_batch: Annotated[int, typer.Option(
            help="Most requests decoded as one batch; 1 serves one request at a time.")] =
            MAX_BATCH,
        warm_up: Annotated[str | None, typer.Option(
            help="Decode blank HxW frames (e.g. 128x128) at every power-of-two batch size "
                 "before serving, so --fast captures its graphs before the first client.")
        ] = None,
        fast: Annotated[bool, typer.Option(
            "--fast", help="The model's fast path (static KV cache; CUDA graphs on a GPU).")] =
            False,
    ) -> None:
        """Serve a VLA policy over openpi's websocket protocol (openpi-client drives it)."""
        import logging

        import torch

        from policies.batching import BatchConfig
        from policies.server import PolicyServer
        from policies.vla_policy import VLAPolicy

        if not 0 <= port <= 65535:
            raise typer.BadParameter(f"must be in 0..65535, got {port}", param_hint="--port")
        for hint, value in (("--idle-timeout", idle_timeout), ("--send-timeout", send_timeout),
                            ("--max-clients", max_clients),
                            ("--max-clients-per-ip", max_clients_per_ip)):
            if not value > 0:
                raise typer.BadParameter(f"must be positive, got {value}", param_hint=hint)
        try:
            batching = BatchConfig(window_ms=batch_window_ms, max_batch=max_batch)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        frame = _frame(warm_up) if warm_up else None
        torch.set_num_threads(max(1, threads))
        try:
            served = VLAPolicy(policy, decoder, device=device, fast=fast)
        except ValueError as err:  # unknown spec, missing folder, wrong head: one line
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        if frame is not None:
            served.warm_up(frame, max_batch)
            typer.echo(f"warmed up on {frame[0]}x{frame[1]} frames, batches 1..{max_batch}")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        try:
            server = PolicyServer(served, host=host, port=port, max_clients=max_clients,
                                  max_clients_per_ip=max_clients_per_ip,
                                  idle_timeout=idle_timeout, send_timeout=send_timeout,
                                  api_key=api_key or None, allow_origins=allow_origin or (),
                                  batching=batching)
        except OSError as err:
            typer.echo(f"error: cannot listen on {host}:{port}: {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"serving {decoder} from {served.path} on ws://{host}:{server.port} "
                   f"(openpi protocol; API key {'required' if api_key else 'off'}; batches of "
                   f"up to {max_batch}, {batch_window_ms:g} ms window; GET /metrics; Ctrl-C "
                   "stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()


def _frame(text: str) -> tuple[int, int]:
    """``"128x96"`` -> (128, 96); a clear error otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"must look like 128x128, got {text!r}",
                                 param_hint="--warm-up") from None
    if h < 1 or w < 1:
        raise typer.BadParameter(f"must be positive, got {text!r}", param_hint="--warm-up")
    return h, w
