"""The evaluation summary (``eval_info.json``) and rollout videos.

Usage: ``summarize(config, records, eval_s=12.3)`` -> dict with LeRobot's keys plus ours.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import wilson_interval

NOT_RECORDED = "machine not recorded"  # episodes recorded before records named their machine


def failure_kind(reason: str | None) -> str | None:
    """Group a failure reason: ``policy output``, ``time limit``, ``terminated`` or the text."""
    if reason is None:
        return None
    for kind in ("policy output", "time limit", "terminated"):
        if reason.startswith(kind):
            return kind
    return reason


def _mean_of(records: list[dict[str, Any]], key: str) -> float | None:
    """Mean of a per-episode value over the episodes that have it (older records lack it)."""
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def summarize(config: Any, records: list[dict[str, Any]], *, eval_s: float,
              resumed: int = 0) -> dict[str, Any]:
    """Aggregate per-episode records into the summary written as ``eval_info.json``.

    ``pc_success``, ``ci_low`` and ``ci_high`` are percentages (95% Wilson interval);
    ``nfe_per_chunk`` is the mean decoder passes per chunk, ``ms_per_chunk`` the median wall
    time of ``Policy.infer`` over every chunk (each worker makes one untimed warm-up call
    first; ``decode_ms_per_chunk`` is the decoder alone, when the policy reports it), and
    ``hz = k * 1000 / ms_per_chunk``. ``avg_switch_jump``, ``avg_step_jump`` and ``avg_jerk``
    average the episodes' action smoothness (:func:`policies.rollout.smoothness`).
    ``machines`` counts the episodes by the machine they ran on
    (:func:`experiments.provenance.machine`), which ``provenance`` (the machine writing this
    summary) need not be when a run was resumed or grown elsewhere.

    Args:
        config: The :class:`~experiments.evaluate.EvalConfig`.
        records: One record per episode, in episode order.
        eval_s: Wall time of this invocation.
        resumed: Episodes taken over from an earlier, interrupted invocation.
    """
    from experiments.provenance import provenance

    n = len(records)
    if n == 0:
        raise ValueError("records must hold at least one episode")
    wins = sum(bool(r["success"]) for r in records)
    low, high = wilson_interval(wins, n)
    chunk_ms = [ms for r in records for ms in r["chunk_ms"]]
    nfe = [x for r in records for x in r["chunk_nfe"] if x is not None]
    prefix = [x for r in records for x in r.get("chunk_prefix_nfe", []) if x is not None]
    delays = [x for r in records for x in r["chunk_delay_steps"]]
    ks = sorted({r["k"] for r in records if r["k"] is not None})
    k = ks[0] if len(ks) == 1 else None
    ms = statistics.median(chunk_ms) if chunk_ms else None
    decode_ms = [x for r in records for x in r.get("chunk_decode_ms", []) if x is not None]
    max_rewards = [r["max_reward"] for r in records if r["max_reward"] is not None]
    return {
        "env_id": config.env_id,
        "policy": config.policy,
        "decoder": config.decoder,
        "split": config.split,
        "episodes": n,
        "n_success": wins,
        "pc_success": 100.0 * wins / n,
        "ci_low": 100.0 * low,
        "ci_high": 100.0 * high,
        "avg_sum_reward": float(np.mean([r["sum_reward"] for r in records])),
        "avg_max_reward": float(np.mean(max_rewards)) if max_rewards else None,
        "avg_steps": float(np.mean([r["steps"] for r in records])),
        "k": k if k is not None else ks,
        "nfe_per_chunk": float(np.mean(nfe)) if nfe else None,
        "prefix_nfe_per_chunk": float(np.mean(prefix)) if prefix else None,
        "ms_per_chunk": ms,
        "ms_per_chunk_p90": float(np.percentile(chunk_ms, 90)) if chunk_ms else None,
        "decode_ms_per_chunk": statistics.median(decode_ms) if decode_ms else None,
        "hz": k * 1000.0 / ms if (k is not None and ms) else None,
        "n_chunks": len(chunk_ms),
        "latency": config.latency,
        "avg_delay_steps": float(np.mean(delays)) if delays else 0.0,
        **{f"avg_{key}": _mean_of(records, key) for key in ("switch_jump", "step_jump", "jerk")},
        "ensemble_decay": config.ensemble_decay,
        "failures": dict(Counter(failure_kind(r["failure"]) for r in records if r["failure"])),
        "seeds": [r["seed"] for r in records],
        "per_episode": [{
            "episode_ix": r["episode"], "seed": r["seed"], "success": r["success"],
            "sum_reward": r["sum_reward"], "max_reward": r["max_reward"], "steps": r["steps"],
            "failure": r["failure"], "instruction": r.get("instruction"),
            "nfe_per_chunk": r["nfe_per_chunk"],
            "ms_per_chunk": r["ms_per_chunk"], **({"video": r["video"]} if "video" in r else {}),
        } for r in records],
        "videos": [r["video"] for r in records if "video" in r],
        "eval_s": eval_s,
        "eval_ep_s": float(np.mean([r["episode_s"] for r in records if "episode_s" in r] or [0])),
        "resumed_episodes": resumed,
        "machines": dict(Counter(r.get("machine", NOT_RECORDED) for r in records)),
        "workers": config.workers,
        "threads_per_worker": config.threads,
        "config": asdict(config),
        "provenance": provenance(torch_threads=config.threads, workers=config.workers),
    }


def write_video(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB frames to an H.264 mp4 through PyAV, atomically (temp file, then rename).

    Frames are padded to even sides, as yuv420p requires.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    first = np.asarray(frames[0])
    height, width = first.shape[0] + first.shape[0] % 2, first.shape[1] + first.shape[1] % 2
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=max(1, round(fps)))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in frames:
                img = np.zeros((height, width, 3), np.uint8)
                img[: frame.shape[0], : frame.shape[1]] = frame
                container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            container.mux(stream.encode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
