"""Policy-server benchmarks: the websocket hop of one call, and throughput under many clients.

Usage: robodecode bench server-load [--decoder oft --decoder ar] [--clients 1,8,32,64] \
    [--requests 8] [--device cuda] [--fast] [--out scratch/bench]

``bench server-load`` (:func:`run_load_benchmark`): the policy behind
:class:`policies.server.PolicyServer` on 127.0.0.1, driven by N concurrent websocket clients
(raw ``websockets``, openpi's wire format, in a separate process so that the clients do not
compete with the server for its interpreter), each sending its next observation as soon as its
last reply arrives. For each decoder and N it runs the serial server (one request at a time:
the server before batching) and the batched server (``--batch-window-ms``, ``--max-batch``)
back to back, and reports requests/s, client-side p50/p99 latency, the mean batch size and
whether every answer equals the policy's answer alone. Before timing, the policy decodes one
batch of each power-of-two size up to ``--max-batch`` (the fast path captures its CUDA graphs
per padded batch shape on first use). The JSON goes to ``--out`` (a folder; default
``scratch/bench``, git-ignored), as ``server_load_<device>.json``.

``bench server`` (:func:`run_benchmark`; ``robodecode bench server [--decoder cjacobi+ee]
[--calls 200] [--out DIR/server.json]``): one process, the shipped checkpoint set behind the
server, driven by the published ``openpi-client``. Every observation (real tabletop frames)
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


DEFAULT_LOAD_OUT = Path("scratch/bench")
DEFAULT_LOAD_DECODERS = ("oft", "ar")


def drive_clients(port: int, n_clients: int, requests: int, warmup: int,
                  messages: list[bytes]) -> dict[str, Any]:
    """N websocket clients in closed loop against ``port`` (run in the clients' process).

    Each client sends ``warmup`` untimed requests, then, once all have, ``requests`` timed
    ones; client ``i``'s ``r``-th request is ``messages[(i + r) % len(messages)]``.

    Returns:
        ``wall_s`` of the timed phase and, per timed request, ``(message index, latency s,
        actions, server_timing)``.
    """
    import asyncio

    from websockets.asyncio.client import connect

    from policies.wire import unpack

    async def run() -> dict[str, Any]:
        url = f"ws://127.0.0.1:{port}"
        conns = [await connect(url, max_size=None, compression=None, open_timeout=60)
                 for _ in range(n_clients)]
        for ws in conns:
            await ws.recv()  # the metadata
        timed: list[tuple[int, float, bytes]] = []

        async def client(i: int, ws: Any, count: int, keep: bool) -> None:
            for r in range(count):
                k = (i + r) % len(messages)
                tic = time.perf_counter()
                await ws.send(messages[k])
                reply = await ws.recv()
                if isinstance(reply, str):
                    raise RuntimeError(f"the server answered {reply!r}")
                if keep:
                    timed.append((k, time.perf_counter() - tic, reply))

        await asyncio.gather(*(client(i, ws, warmup, False) for i, ws in enumerate(conns)))
        tic = time.perf_counter()
        await asyncio.gather(*(client(i, ws, requests, True) for i, ws in enumerate(conns)))
        wall = time.perf_counter() - tic
        for ws in conns:
            await ws.close()
        return {"wall_s": wall, "timed": timed}

    out = asyncio.run(run())
    replies = [(k, dt, unpack(reply)) for k, dt, reply in out["timed"]]
    return {"wall_s": out["wall_s"], "timed": [(k, dt, r["actions"], r["server_timing"])
                                               for k, dt, r in replies]}


def _cell(out: dict[str, Any], expected: list[Any] | None) -> dict[str, Any]:
    """Throughput, latency percentiles, batch sizes and agreement of one (mode, N) run."""
    import numpy as np

    ms = np.array([dt for _, dt, _, _ in out["timed"]]) * 1e3
    diff = None if expected is None else max(
        float(np.abs(actions - expected[k]).max()) for k, _, actions, _ in out["timed"])
    return {"requests": len(ms), "wall_s": out["wall_s"],
            "throughput_rps": len(ms) / out["wall_s"], "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_batch_size": float(np.mean([t["batch_size"] for *_, t in out["timed"]])),
            "max_abs_diff_vs_alone": diff}


def run_load_benchmark(checkpoints: Path, decoders: list[str], clients: list[int],
                       requests: int, batching: Any, device: str = "cpu", threads: int = 1,
                       fast: bool = False, warmup: int = 1, n_observations: int = 16,
                       env_id: str = "robodecode/TabletopPickPlace-v0") -> dict[str, Any]:
    """Serial vs batched server, per decoder and client count (see the module docstring).

    Raises:
        ValueError: If a decoder spec or the checkpoint is invalid.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import gymnasium as gym

    import envs  # noqa: F401 - registers the ids
    from policies.batching import SERIAL
    from policies.server import PolicyServer
    from policies.vla_policy import VLAPolicy
    from policies.wire import pack

    env = gym.make(env_id)
    observations = [env.reset(seed=i)[0] for i in range(n_observations)]
    env.close()
    messages = [pack(o) for o in observations]
    rows = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for decoder in decoders:
            policy = VLAPolicy(checkpoints, decoder, device=device, fast=fast)
            policy.model.cpu_threads = threads
            expected = None if policy.spec.stochastic else [
                policy.infer(o)["actions"] for o in observations]
            size = 2
            while size <= batching.max_batch:  # every padded batch shape: graphs, allocator
                policy.infer_batch([observations[i % len(observations)] for i in range(size)])
                size *= 2
            for n in clients:
                row: dict[str, Any] = {"decoder": str(policy.spec), "clients": n}
                for mode, config in (("serial", SERIAL), ("batched", batching)):
                    policy.reset(seed=0)
                    with PolicyServer(policy, port=0, max_clients=max(n, 64),
                                      max_clients_per_ip=max(n, 16), batching=config) as server:
                        out = pool.submit(drive_clients, server.port, n, requests, warmup,
                                          messages).result()
                    row[mode] = _cell(out, expected)
                row["speedup"] = row["batched"]["throughput_rps"] / \
                    row["serial"]["throughput_rps"]
                rows.append(row)
    return {"checkpoints": str(checkpoints), "env_id": env_id, "device": device,
            "threads": threads, "fast": fast, "requests_per_client": requests,
            "warmup_per_client": warmup, "batch_window_ms": batching.window_ms,
            "max_batch": batching.max_batch, "rows": rows}


def print_load_table(record: dict[str, Any]) -> None:
    """The serial-vs-batched table of :func:`run_load_benchmark`'s record."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"policy server on {record['device']}, N clients: serial vs batched "
                        f"({record['batch_window_ms']:g} ms window, max batch "
                        f"{record['max_batch']}; {record['requests_per_client']} requests per "
                        "client; req/s and ms)")
    for col in ("decoder", "N", "serial/s", "p50", "p99", "batched/s", "p50", "p99", "batch",
                "speedup", "max|diff|"):
        table.add_column(col, justify="right")
    for row in record["rows"]:
        s, b = row["serial"], row["batched"]
        diff = max((c["max_abs_diff_vs_alone"] for c in (s, b)
                    if c["max_abs_diff_vs_alone"] is not None), default=None)
        table.add_row(row["decoder"], str(row["clients"]), f"{s['throughput_rps']:.1f}",
                      f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{b['throughput_rps']:.1f}",
                      f"{b['p50_ms']:.1f}", f"{b['p99_ms']:.1f}", f"{b['mean_batch_size']:.1f}",
                      f"{row['speedup']:.2f}x", "n/a" if diff is None else f"{diff:.1e}")
    Console(width=max(100, Console().width)).print(table)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode bench server`` and ``robodecode bench server-load``."""

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

    @bench.command("server-load")
    def bench_server_load(
        checkpoints: Annotated[Path, typer.Option(help="Checkpoint set or model folder.")] =
            DEFAULT_CHECKPOINTS,
        decoder: Annotated[list[str] | None, typer.Option(
            help="Decoder spec served (repeatable; default: oft and ar).")] = None,
        clients: Annotated[str, typer.Option(help="Concurrent client counts.")] = "1,8,32,64",
        requests: Annotated[int, typer.Option(min=1, help="Timed requests per client.")] = 8,
        warmup: Annotated[int, typer.Option(min=0, help="Untimed requests per client.")] = 1,
        device: Annotated[str, typer.Option(help="Torch device of the model.")] = "cpu",
        threads: Annotated[int, typer.Option(min=1, help="torch CPU threads (recorded).")] = 1,
        batch_window_ms: Annotated[float, typer.Option(
            help="The batched server's window (ms).")] = 2.0,
        max_batch: Annotated[int, typer.Option(help="The batched server's largest batch.")] =
            64,
        fast: Annotated[bool, typer.Option(
            "--fast", help="The model's fast path (static KV cache; CUDA graphs).")] = False,
        out: Annotated[Path, typer.Option(
            help="Folder of the JSON (server_load_<device>.json).")] = DEFAULT_LOAD_OUT,
    ) -> None:
        """Throughput and latency vs concurrent clients: serial vs batched server."""
        import torch

        from experiments.provenance import provenance, write_json_atomic
        from policies.batching import BatchConfig

        try:
            counts = [int(c) for c in clients.split(",") if c.strip()]
            if not counts or min(counts) < 1:
                raise ValueError(f"--clients must list positive ints, got {clients!r}")
            batching = BatchConfig(window_ms=batch_window_ms, max_batch=max_batch)
            torch.set_num_threads(threads)
            record = run_load_benchmark(checkpoints, list(decoder or DEFAULT_LOAD_DECODERS),
                                        counts, requests, batching, device=device,
                                        threads=threads, fast=fast, warmup=warmup)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        print_load_table(record)
        path = write_json_atomic(out / f"server_load_{device.split(':')[0]}.json", {
            "provenance": provenance(device=device, threads=threads), **record})
        typer.echo(f"wrote {path}")
