"""Eager vs fast path per decoder and batch size, against a one-pass floor (``bench vla``).

Usage: ``rows = speed_table(checkpoints, observations, device="cuda", batches=(1, 8, 64))``

For every decoder of the comparison (:data:`vla.decoders.COMPARISON_DECODERS`) whose
checkpoint folder is present and every batch size: ``predict_chunk`` end to end (host
observation in, host actions out) on the eager path and on the fast path (:mod:`vla.fast`),
median ms per chunk and chunks/s, passes per chunk, and how far the fast answers are from the
eager ones (largest action difference; share of identical action tokens for token heads). The
two paths run interleaved on the same observation batches, so a changing load hits both alike.

The **floor** of a checkpoint is one forward pass of its whole model over [prefix | chunk
positions] (prefix encoding from the uint8 images included, unnormalization included)
captured in a CUDA graph, timed the same way: inputs copied in, one replay, actions copied out.
No parallel decoder can beat it; each row reports its fast path's ratio to it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.checkpoint import from_pretrained
from vla.decoders import COMPARISON_DECODERS
from vla.fast import Engine, capture

Observation = dict[str, Any]


def stack(observations: Sequence[Observation], start: int, batch: int) -> Observation:
    """``batch`` observations from ``start`` (cycled) stacked into one ``obs_batch``."""
    items = [observations[(start + j) % len(observations)] for j in range(batch)]
    out: Observation = {"instruction": [it["instruction"] for it in items]}
    for key in items[0]:
        if key != "instruction":
            out[key] = np.stack([np.asarray(it[key]) for it in items])
    return out


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """Run ``fn`` and return its result and wall ms (the device synchronized after)."""
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, 1e3 * (time.perf_counter() - t0)


@torch.inference_mode()
def floor_ms(model, obs_batch: Observation, reps: int) -> float:
    """Median ms of one graphed full pass over [prefix | chunk] (see the module docstring)."""
    cfg = model.config
    raw = model.raw_inputs(obs_batch)
    eng = Engine(model, raw)
    n = cfg.n_action_tokens if cfg.head in ("ar", "diffusion") else cfg.horizon
    chunk_in = torch.zeros(raw.batch_size, n, cfg.d_model, dtype=model.dtype,
                           device=model.device)

    def full_pass() -> torch.Tensor:
        h = model.backbone.run_full(model.prefix_tokens(eng.observation()), chunk_in,
                                    causal=False)
        return model.tokenizer.unnormalize(h[:, :cfg.horizon, :cfg.action_dim].float())

    run = full_pass
    if model.device.type == "cuda":
        graph, out = capture(full_pass)

        def run() -> torch.Tensor:
            graph.replay()
            return out

    times = []
    for _ in range(reps + 2):
        _, ms = timed(lambda: (eng.load(raw), run().cpu()), model.device)
        times.append(ms)
    return statistics.median(times[2:])


def compare_answers(model, eager: np.ndarray, fast: np.ndarray) -> dict[str, float]:
    """Largest action difference and, for token heads, the share of identical tokens."""
    out = {"max_abs_diff": float(np.abs(eager - fast).max())}
    if model.config.head in ("ar", "diffusion"):
        tok = model.tokenizer

        def ids(a: np.ndarray) -> torch.Tensor:
            return tok.bin_ids(tok.normalize(torch.as_tensor(a, device=model.device)))

        out["tokens_identical"] = float((ids(eager) == ids(fast)).float().mean())
    return out


def speed_table(checkpoints: Path, observations: Sequence[Observation], device: str = "cuda",
                batches: Sequence[int] = (1, 8, 64), reps: int = 20,
                progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Rows of the eager/fast table for every benchmarked decoder present (module docstring).

    Returns:
        ``{"rows": [...], "floors": {folder: {batch: ms}}}``.
    """
    rows: list[dict[str, Any]] = []
    floors: dict[str, dict[int, float]] = {}
    for spec in COMPARISON_DECODERS:
        folder = Path(checkpoints) / spec.checkpoint
        if not (folder / "config.json").is_file():
            continue
        model = from_pretrained(folder, device=device)
        kwargs = spec.predict_kwargs()
        decoder = kwargs.pop("decoder")
        for b in batches:
            if b not in floors.setdefault(spec.checkpoint, {}):
                floors[spec.checkpoint][b] = floor_ms(model, stack(observations, 0, b), reps)
            rows.append(measure(model, spec, decoder, kwargs, observations, b, reps))
            row = rows[-1]
            row["floor_ms"] = floors[spec.checkpoint][b]
            row["fast_vs_floor"] = row["fast_ms"] / row["floor_ms"]
            progress(format_speed_row(row))
    return {"rows": rows, "floors": floors}


def measure(model, spec, decoder: str, kwargs: dict[str, Any],
            observations: Sequence[Observation], batch: int, reps: int) -> dict[str, Any]:
    """Eager and fast timings, passes and answer agreement of one decoder at one batch size."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    nfe, diffs, same, path = [], [], [], ""
    for i in range(reps + 3):  # the first three warm up (and capture the graphs)
        obs = stack(observations, i * batch, batch)
        answers = {}
        for fast in (False, True):
            kw = dict(kwargs)
            if spec.stochastic:
                kw["generator"] = torch.Generator(model.device).manual_seed(i)
            (actions, st), ms = timed(lambda obs=obs, kw=kw, fast=fast: model.predict_chunk(
                obs, decoder, fast=fast, **kw), model.device)
            answers[fast] = actions
            if i >= 3:
                samples[fast].append(ms)
            if fast:
                path = st["path"]
                nfe.append(st["nfe"])
        agree = compare_answers(model, answers[False], answers[True])
        diffs.append(agree["max_abs_diff"])
        same.append(agree.get("tokens_identical", float("nan")))
    eager_ms, fast_ms = statistics.median(samples[False]), statistics.median(samples[True])
    return {"decoder": str(spec), "checkpoint": spec.checkpoint, "batch": batch,
            "eager_ms": eager_ms, "fast_ms": fast_ms,
            "eager_chunks_per_s": 1e3 * batch / eager_ms,
            "fast_chunks_per_s": 1e3 * batch / fast_ms, "speedup": eager_ms / fast_ms,
            "nfe_per_chunk": statistics.fmean(nfe), "fast_path": path,
            "max_abs_diff": max(diffs), "tokens_identical": statistics.fmean(same)}


def format_speed_row(r: dict[str, Any]) -> str:
    """One table line."""
    same = r["tokens_identical"]
    return (f"{r['decoder']:<14} B={r['batch']:<3d} passes={r['nfe_per_chunk']:6.2f}  "
            f"eager {r['eager_ms']:8.3f} ms ({r['eager_chunks_per_s']:9.0f}/s)  "
            f"fast {r['fast_ms']:7.3f} ms ({r['fast_chunks_per_s']:9.0f}/s)  "
            f"x{r['speedup']:5.1f}  floor {r['floor_ms']:.3f} ms  fast/floor "
            f"{r['fast_vs_floor']:5.2f}  max|da| {r['max_abs_diff']:.1e}"
            + ("" if same != same else f"  tokens= {same:.3f}"))
