"""``robodecode bench vla``: every head and decoder of a checkpoint set, side by side.

Usage: robodecode bench vla --checkpoints experiments/checkpoints/TabletopPickPlace-v0/seed0 \
    --data scratch/demos [--device cuda] [--out PATH]

The measurement lives in :mod:`vla.bench`; this command adds provenance and writes the JSON
(default ``scratch/vla/bench_vla_<device>.json``; committed results only with ``--out``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from decoding.threads import DEFAULT_CPU_THREADS

SCRATCH = Path("scratch/vla")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench vla``."""

    @bench.command("vla")
    def bench_vla_cmd(
        checkpoints: Annotated[Path, typer.Option(
            help="folder holding ar/ [cjacobi/ diffusion/ flow/ oft/] checkpoints")],
        data: Annotated[Path, typer.Option(help="dataset; held-out episodes are decoded")],
        out: Annotated[Path | None, typer.Option(
            help="results JSON (default scratch/vla/bench_vla_<device>.json)")] = None,
        device: str = "cpu",
        threads: int = DEFAULT_CPU_THREADS,
        n_obs: Annotated[int, typer.Option(help="held-out observations per decoder")] = 128,
        train_steps: Annotated[int, typer.Option(help="steps timed for steps/s")] = 5,
        data_cache: Path = SCRATCH / "chunks",
        fp16_check: Annotated[int, typer.Option(
            help="held-out items for the float16-storage check (0 = skip)")] = 0,
    ) -> None:
        """Per head and decoder: params, train steps/s, passes and ms per chunk, action error."""
        import torch

        from experiments.provenance import provenance, write_json_atomic
        from vla.bench import run_bench

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise typer.BadParameter(f"device {device!r} requested but CUDA is not available")
        torch.set_num_threads(threads)
        try:
            result = run_bench(checkpoints, data=data, device=device, threads=threads,
                               n_obs=n_obs, train_steps=train_steps, data_cache=data_cache,
                               fp16_check=fp16_check)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        result["provenance"] = provenance(device=device, threads=threads)
        target = out or SCRATCH / f"bench_vla_{device.split(':')[0]}.json"
        write_json_atomic(target, result)
        typer.echo(f"wrote {target}")
