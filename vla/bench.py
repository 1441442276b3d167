"""``robodecode bench vla``: every head and decoder side by side on held-out observations.

Usage: robodecode bench vla --checkpoints scratch/vla/ckpt --data scratch/vla/data/pickplace200

Per decoder: parameters, training steps/s (batch 64, timed), passes per chunk (``nfe``, mean
over held-out observations decoded one at a time), ms per chunk (``predict_chunk`` end to end,
batch 1, median; decoder alone reported apart), and the action error (mean |a - a_demo| in
normalized units). Greedy AR is the baseline of the same run. On CUDA the numbers are the eager
path (no static cache, no CUDA graphs).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from decoding import EarlyExit
from vla.checkpoint import from_pretrained
from vla.data import ChunkTensors, load_split
from vla.decoders import BENCH_DECODERS
from vla.evaluate import eval_indices, instruction_sensitivity

BENCH_FOLDERS = tuple(dict.fromkeys(spec.checkpoint for spec in BENCH_DECODERS))
"""Checkpoint-set folders the benchmark looks for, the AR baseline first."""

# Measured floor (anchors.md): 4 layers d128, 2-core CPU: AR 32 single-token passes 22.7 ms,
# one pass over the 32-token chunk 1.6 ms.
FLOOR_AR_MS, FLOOR_PASS_MS, FLOOR_TOKENS = 22.7, 1.6, 32


def decoder_plan(folder: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, decoder, kwargs) of the benchmarked specs served by set folder ``folder``.

    The specs are :data:`vla.decoders.BENCH_DECODERS`; each runs exactly as ``robodecode eval``
    runs it (``+ee``: the early exit stored with the checkpoint, else ``EarlyExit()``).
    """
    plan = []
    for spec in BENCH_DECODERS:
        if spec.checkpoint == folder:
            kwargs = spec.predict_kwargs()
            plan.append((str(spec), kwargs.pop("decoder"), kwargs))
    return plan


def train_steps_per_s(model, data: ChunkTensors, steps: int, batch: int = 64) -> float:
    """Training throughput of a copy of ``model`` (AdamW, batch ``batch``)."""
    import copy

    m = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    lang = m.instructions.embed(data.instructions).to(m.device)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        idx = torch.randint(len(data), (batch,), generator=g)
        obs, actions, pad = data.batch(idx, lang, m.config.image_size)
        t0 = time.perf_counter()
        loss, _ = m.compute_loss(obs, actions, pad, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if m.device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def measure_once(model, data: ChunkTensors, i: int, decoder: str, kwargs: dict[str, Any]
                 ) -> dict[str, float]:
    """Decode held-out item ``i`` alone: passes, error (normalized L1) and timings."""
    kw = dict(kwargs)
    if decoder == "flow":
        kw["generator"] = torch.Generator(device=model.device).manual_seed(i)
    actions, st = model.predict_chunk(data.obs_dict([i]), decoder=decoder, **kw)
    pred = model.tokenizer.normalize(torch.as_tensor(actions[0], device=model.device))
    true = model.tokenizer.normalize(data.actions[i].to(model.device))
    err = float((pred - true).abs()[~data.is_pad[i].to(model.device)].mean())
    return {"nfe": st["nfe"], "l1": err, "total": st["total_ms"], "dec": st["decode_ms"],
            "pre": st["prefix_ms"]}


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Means of passes and error, medians of the timings."""
    return {"nfe_per_chunk": statistics.fmean(s["nfe"] for s in samples),
            "nfe_max": max(s["nfe"] for s in samples),
            "action_l1": statistics.fmean(s["l1"] for s in samples),
            "ms_per_chunk_predict_chunk": statistics.median(s["total"] for s in samples),
            "ms_decoder_only": statistics.median(s["dec"] for s in samples),
            "ms_prefix": statistics.median(s["pre"] for s in samples)}


def fp16_storage_effect(model, data: ChunkTensors, indices: list[int], seed: int = 0
                        ) -> dict[str, Any]:
    """What storing the weights in float16 changes, measured on a float32 twin of ``model``.

    A float16 checkpoint has no float32 original to compare with, so the twin adds to every
    weight fresh noise of float16 rounding size (uniform within half a float16 ulp); the
    twin is a float32 model like the trained one, and rounding it back to float16 is exactly
    what ``save_pretrained`` does to it. Both decode the same held-out items with the head's
    default decoder; the result holds the action-error difference, the largest action change
    and, for token heads, the share of identical tokens.
    """
    import copy

    g = torch.Generator().manual_seed(seed)
    twin32 = copy.deepcopy(model)
    with torch.no_grad():
        for _, p in twin32.named_parameters():
            w16 = p.detach().half()
            ulp = (w16.float().abs().clamp_min(6.1e-5) * 2.0 ** -10).to(p.device)
            noise = (torch.rand(p.shape, generator=g).to(p.device) - 0.5) * ulp
            p.add_(noise)
    twin16 = copy.deepcopy(twin32)
    with torch.no_grad():
        for p in twin16.parameters():
            p.copy_(p.half().float())
    diffs, errs32, errs16, same = [], [], [], []
    for i in indices:
        obs = data.obs_dict([i])
        outs = []
        for m in (twin32, twin16):
            if m.config.head == "flow":
                kw = {"generator": torch.Generator(device=m.device).manual_seed(i)}
            else:
                kw = {}
            outs.append(torch.as_tensor(m.predict_chunk(obs, **kw)[0][0]))
        a32, a16 = (model.tokenizer.normalize(o.to(model.device)) for o in outs)
        true = model.tokenizer.normalize(data.actions[i].to(model.device))
        valid = ~data.is_pad[i].to(model.device)
        diffs.append(float((a32 - a16).abs().max()))
        errs32.append(float((a32 - true).abs()[valid].mean()))
        errs16.append(float((a16 - true).abs()[valid].mean()))
        same.append(float((model.tokenizer.bin_ids(a32) == model.tokenizer.bin_ids(a16))
                          .float().mean()))
    out = {"action_l1_fp32": statistics.fmean(errs32), "action_l1_fp16": statistics.fmean(errs16),
           "max_action_change": max(diffs), "n": len(indices)}
    if model.config.head in ("ar", "diffusion"):
        out["identical_tokens"] = statistics.fmean(same)
    return out


def run_bench(checkpoints: Path, data: Path | None, device: str = "cpu", threads: int = 2,
              n_obs: int = 128, train_steps: int = 5, data_cache: Path | None = None,
              heads: tuple[str, ...] = BENCH_FOLDERS,
              fp16_check: int = 0) -> dict[str, Any]:
    """Benchmark every checkpoint folder under ``checkpoints`` (names in ``heads``).

    Returns:
        ``{"rows": [...], "settings": {...}}``; each row one decoder of one checkpoint.
    """
    folders = [(name, Path(checkpoints) / name) for name in heads
               if (Path(checkpoints) / name / "config.json").is_file()]
    if not folders or folders[0][0] != "ar":
        raise ValueError(f"{checkpoints} must hold an ar/ checkpoint (the baseline), found "
                         f"{[n for n, _ in folders]}")
    rows: list[dict[str, Any]] = []
    fp16: dict[str, Any] = {}
    sensitivity: dict[str, float | None] = {}
    plan = []
    held = None
    for name, folder in folders:
        model = from_pretrained(folder, device=device)
        c = model.config
        if held is None:
            if data is None:
                raise ValueError("data is required: held-out observations come from it")
            split = load_split(data, c.horizon, c.cameras, c.image_size, cache_dir=data_cache)
            held = (split.val or split.train).to(device)
            indices = eval_indices(held, n_obs)
        missing = [t for t in held.instructions if t not in model.instructions]
        if missing:
            raise ValueError(f"{folder} lacks embeddings for {missing[:2]}: rebuild its cache")
        sps = train_steps_per_s(model, held, train_steps) if train_steps else None
        pool = split.train.instructions + held.instructions
        sensitivity[name] = (instruction_sensitivity(model, held, indices[:16], pool)
                             if len(set(pool)) > 1 else None)
        print(f"{name}: instruction sensitivity {sensitivity[name]}", flush=True)
        if fp16_check:
            fp16[name] = fp16_storage_effect(model, held, indices[:fp16_check])
            print(f"{name}: fp16 storage {fp16[name]}", flush=True)
        for label, decoder, kw in decoder_plan(name):
            ee = kw.get("early_exit") and dataclasses.asdict(
                EarlyExit(**(model.chosen_early_exit or {})))
            rows.append({"checkpoint": name, "head": c.head, "decoder": label,
                         "params": model.num_parameters(), "train_steps_per_s": sps,
                         "early_exit": ee or None})
            plan.append((model, decoder, kw, []))
    for model, decoder, kw, _ in plan:  # warm-up
        for i in indices[:2]:
            measure_once(model, held, i, decoder, kw)
    # Interleaved: every decoder decodes observation i before any moves on, so a shared
    # machine's changing load hits all decoders alike (paired timings).
    for i in indices:
        for model, decoder, kw, samples in plan:
            samples.append(measure_once(model, held, i, decoder, kw))
    for row, (_, _, _, samples) in zip(rows, plan, strict=True):
        row.update(summarize(samples))
        print(format_row(row), flush=True)
    base = next(r for r in rows if r["decoder"] == "ar")
    for r in rows:
        r["nfe_vs_ar"] = r["nfe_per_chunk"] / base["nfe_per_chunk"]
        r["l1_vs_ar"] = r["action_l1"] / base["action_l1"]
        r["ms_speedup_vs_ar"] = base["ms_per_chunk_predict_chunk"] / r[
            "ms_per_chunk_predict_chunk"]
        if r["head"] == "ar" and r["decoder"] != "ar":  # floor: k chunk passes vs n single
            r["predicted_decoder_speedup_from_floor"] = (
                FLOOR_AR_MS / FLOOR_TOKENS * base["nfe_per_chunk"]) / (
                FLOOR_PASS_MS * r["nfe_per_chunk"])
            r["measured_decoder_speedup"] = base["ms_decoder_only"] / r["ms_decoder_only"]
    load = os.getloadavg()
    return {"rows": rows, "fp16_storage": fp16, "instruction_sensitivity": sensitivity,
            "settings": {"device": device, "threads": threads, "n_obs": n_obs,
                         "loadavg_1_5_15min_at_end": load,
                         "batch": 1, "timing": "predict_chunk end to end, median over "
                         "held-out items, decoders interleaved per item",
                         "path": "eager" if device != "cpu" else "cpu",
                         "checkpoints": str(checkpoints), "data": str(data)}}


def format_row(r: dict[str, Any]) -> str:
    """One table line."""
    return (f"{r['decoder']:<16} params={r['params']:>9,d}  passes/chunk={r['nfe_per_chunk']:6.2f}"
            f"  ms/chunk={r['ms_per_chunk_predict_chunk']:8.2f}"
            f"  decoder-ms={r['ms_decoder_only']:8.2f}  L1={r['action_l1']:.4f}"
            + (f"  train-steps/s={r['train_steps_per_s']:.2f}"
               if r.get("train_steps_per_s") else ""))
