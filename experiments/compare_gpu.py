"""Eager GPU timing of every decoder, kept beside a comparison and merged into its table.

Usage: robodecode compare --gpu-timing [--out DIR]   (on a machine with a CUDA GPU)

:func:`write_gpu_timing` times every decoder's ``Policy.infer`` on the first training seed's
checkpoint set, eager, into ``OUT/gpu_eager_timing.json`` with each checkpoint's content hash;
a later comparison there adds the ms as the ``gpu_eager_ms_per_chunk`` column
(:func:`merge_gpu_timing`) for the decoders whose checkpoint is unchanged.
:func:`chunk_timing` is the timer itself (CPU or GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envs.ids import DEFAULT_ENV_ID, check_env_id
from experiments.compare_checkpoints import checkpoint_root, fingerprint, needed_folders
from experiments.compare_config import GPU_TIMING, CompareConfig


def chunk_timing(checkpoint_set: Path, decoders: tuple[str, ...], env_id: str = DEFAULT_ENV_ID,
                 device: str = "cpu", calls: int = 30, warmup: int = 5,
                 rounds: int = 5) -> list[dict[str, Any]]:
    """Median ``Policy.infer`` ms per chunk of each decoder on real observations of ``env_id``.

    On a GPU this is the eager path (no static cache, no CUDA graph), synchronized per call.
    The decoders are timed in ``rounds`` interleaved rounds (each round times every decoder on
    the next ``calls / rounds`` observations, in a rotated order), so clock ramps and
    background jitter on the machine spread over all decoders instead of landing on one.

    Returns:
        One ``{"decoder", "ms_per_chunk", "ms_p10", "ms_p90", "nfe_per_chunk", "device",
        "calls"}`` dict per decoder.
    """
    import time

    import gymnasium as gym
    import numpy as np
    import torch

    import envs  # noqa: F401 - registers the ids
    from policies.vla_policy import VLAPolicy

    if calls < rounds or rounds < 1:
        raise ValueError(f"calls ({calls}) must be at least rounds ({rounds}) >= 1")
    env = gym.make(env_id)
    observations = [env.reset(seed=i)[0] for i in range(warmup + calls)]
    env.close()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    policies = {d: VLAPolicy(checkpoint_set, d, device=device) for d in decoders}
    for policy in policies.values():
        for obs in observations[:warmup]:
            policy.infer(obs)
    ms: dict[str, list[float]] = {d: [] for d in decoders}
    nfe: dict[str, list[float]] = {d: [] for d in decoders}
    batches = np.array_split(np.arange(warmup, warmup + calls), rounds)
    for r, batch in enumerate(batches):
        for decoder in decoders[r % len(decoders):] + decoders[:r % len(decoders)]:
            for i in batch:
                sync()
                tic = time.perf_counter()
                out = policies[decoder].infer(observations[i])
                sync()
                ms[decoder].append(1e3 * (time.perf_counter() - tic))
                nfe[decoder].append(out["nfe"])
    return [{"decoder": d, "ms_per_chunk": float(np.median(ms[d])),
             "ms_p10": float(np.percentile(ms[d], 10)), "ms_p90": float(np.percentile(ms[d], 90)),
             "nfe_per_chunk": float(np.mean(nfe[d])), "device": device, "calls": calls}
            for d in decoders]


def write_gpu_timing(cfg: CompareConfig, log=print, calls: int = 500,
                     rounds: int = 10) -> dict[str, Any]:
    """Time every decoder eagerly on this machine's GPU; write ``GPU_TIMING`` into ``cfg.out``.

    Uses the first training seed's checkpoint set as it exists (nothing is trained) and
    records each decoder's checkpoint hash, so :func:`merge_gpu_timing` can refuse stale
    numbers.
    """
    import torch

    from envs.files import write_json_atomic
    from experiments.provenance import provenance
    from policies.vla_policy import resolve_checkpoint

    check_env_id(cfg.env_id)
    if not torch.cuda.is_available():
        raise ValueError("--gpu-timing needs a CUDA GPU, and torch sees none on this machine")
    folder = checkpoint_root(cfg) / f"seed{cfg.train_seeds[0]}"
    missing = [n for n in needed_folders(cfg.decoders)
               if not (folder / n / "model.safetensors").is_file()]
    if missing:
        raise ValueError(f"--gpu-timing times existing checkpoints only; {folder} lacks "
                         f"{missing} (run compare or --retrain first)")
    log(f"timing {len(cfg.decoders)} decoders on {torch.cuda.get_device_name(0)} (eager)")
    rows = chunk_timing(folder, cfg.decoders, cfg.env_id, device="cuda", calls=calls,
                        rounds=rounds)
    for row in rows:
        row["model"] = fingerprint(resolve_checkpoint(folder, row["decoder"]))
    result = {"label": "eager GPU: batch 1, Policy.infer end to end, no static cache, no CUDA "
                       f"graph, synchronized per call; median of {calls} calls after 5 warm-up, "
                       f"decoders interleaved in {rounds} rounds; p10/p90 per row",
              "gpu": torch.cuda.get_device_name(0), "checkpoints": str(folder), "rows": rows,
              "command": cfg.command, "provenance": provenance(device="cuda")}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / GPU_TIMING, result)
    return result


def merge_gpu_timing(rows: list[dict[str, Any]], out: Path, models: dict[str, str],
                     log=print) -> dict[str, Any] | None:
    """Add ``gpu_eager_ms_per_chunk`` to ``rows`` from ``out/GPU_TIMING`` if it exists.

    Args:
        rows: ``compare.json`` rows, changed in place.
        out: The results folder.
        models: Decoder -> content hash of the checkpoint this comparison evaluated (first
            training seed); a timing of another checkpoint is left out (None).
        log: Where the left-out decoders are reported.

    Returns:
        ``{"file", "gpu", "label", "stale"}`` or None when there is no timing file.
    """
    import json

    path = Path(out) / GPU_TIMING
    if not path.is_file():
        return None
    timing = json.loads(path.read_text())
    measured = {r["decoder"]: r for r in timing["rows"]}
    stale = []
    for row in rows:
        t = measured.get(row["decoder"])
        fresh = t is not None and t.get("model") == models.get(row["decoder"])
        if t is not None and not fresh:
            stale.append(row["decoder"])
        row["gpu_eager_ms_per_chunk"] = t["ms_per_chunk"] if fresh else None
    if stale:
        log(f"{path}: left out GPU timings of other checkpoints for {stale}")
    return {"file": GPU_TIMING, "gpu": timing["gpu"], "label": timing["label"], "stale": stale}
