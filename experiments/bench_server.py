"""Policy-server benchmark: what the openpi websocket hop adds to one ``infer`` call.

Usage: robodecode bench server [--decoder cjacobi+ee] [--calls 200] [--out DIR/server.json]

One process: the shipped checkpoint set behind :class:`policies.server.PolicyServer` on
127.0.0.1, driven by the published ``openpi-client``. Every observation (real tabletop frames)
is decoded both directly (``VLAPolicy.infer``) and through the client, interleaved call by
call, so the overhead (msgpack-numpy both ways, the websocket round trip, the server's checks)
is measured against the baseline in the same run. Client and server share this machine's
cores, as they would on a robot computer that serves its own policy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path("scratch/bench/server.json")
DEFAULT_CHECKPOINTS = Path("experiments/checkpoints/TabletopPickPlace-v0/seed0")


def run_benchmark(checkpoints: Path, decoder: str, calls: int, warmup: int = 5,
                  env_id: str = "robodecode/TabletopPickPlace-v0") -> dict[str, Any]:
    """Median / p90 ms per chunk of direct and served ``infer`` on the same observations."""
    import warnings

    import gymnasium as gym
    import numpy as np
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    import envs  # noqa: F401 - registers the ids
    from policies.server import PolicyServer
    from policies.vla_policy import VLAPolicy
    from policies.wire import pack

    env = gym.make(env_id)
    observations = [env.reset(seed=i)[0] for i in range(warmup + calls)]
    env.close()
    policy = VLAPolicy(checkpoints, decoder)
    direct, served, server_side = [], [], []
    with PolicyServer(policy, port=0) as server:
        with warnings.catch_warnings():  # openpi-client 0.1.2's own connect() call
            warnings.simplefilter("ignore", DeprecationWarning)
            client = WebsocketClientPolicy("127.0.0.1", server.port)
        for i, obs in enumerate(observations):
            tic = time.perf_counter()
            local = policy.infer(obs)
            mid = time.perf_counter()
            remote = client.infer(obs)
            toc = time.perf_counter()
            if not np.array_equal(local["actions"], remote["actions"]) and \
                    policy.spec.family not in ("diffusion", "flow"):
                raise RuntimeError("served actions differ from the direct ones")
            if i >= warmup:
                direct.append(1e3 * (mid - tic))
                served.append(1e3 * (toc - mid))
                server_side.append(remote["server_timing"]["infer_ms"])

    def stats(ms: list[float]) -> dict[str, float]:
        return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}

    return {"decoder": decoder, "checkpoints": str(checkpoints), "env_id": env_id,
            "calls": calls, "request_bytes": len(pack(observations[0])),
            "direct": stats(direct), "served": stats(served),
            "server_infer": stats(server_side),
            "overhead_ms": float(np.median(np.subtract(served, direct)))}


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench server``."""

    @bench.command("server")
    def bench_server(
        checkpoints: Annotated[Path, typer.Option(help="Checkpoint set or model folder.")] =
            DEFAULT_CHECKPOINTS,
        decoder: Annotated[str | None, typer.Option(
            help="Decoder spec served (default: the registry's SERVED_DECODER, the fastest "
                 "AR-family decoder of the comparison).")] = None,
        calls: Annotated[int, typer.Option(min=1, help="Timed calls (after 5 warm-up).")] = 200,
        threads: Annotated[int, typer.Option(min=1, help="torch threads (recorded).")] = 1,
        out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = DEFAULT_OUT,
    ) -> None:
        """Direct vs served (openpi-client -> websocket -> PolicyServer) ms per chunk."""
        import torch
        from rich.console import Console
        from rich.table import Table

        from experiments.provenance import provenance, write_json_atomic
        from vla.decoders import SERVED_DECODER

        decoder = decoder or str(SERVED_DECODER)

        torch.set_num_threads(threads)
        try:
            record = run_benchmark(checkpoints, decoder, calls)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        table = Table(title=f"{decoder}, {calls} calls")
        for col in ("path", "median ms", "p90 ms"):
            table.add_column(col, justify="right")
        for name in ("direct", "served", "server_infer"):
            table.add_row(name, f"{record[name]['median_ms']:.2f}", f"{record[name]['p90_ms']:.2f}")
        Console().print(table)
        typer.echo(f"websocket + msgpack overhead: {record['overhead_ms']:.2f} ms per call "
                   f"(median of served - direct; request {record['request_bytes']:,} bytes)")
        path = write_json_atomic(out, {"provenance": provenance(device="cpu", threads=threads),
                                       **record})
        typer.echo(f"wrote {path}")
