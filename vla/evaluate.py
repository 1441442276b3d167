"""Offline evaluation on held-out demonstrations: action error against passes per chunk.

The action error of a decoder is the mean absolute difference between its chunk and the
demonstrated chunk, in normalized units ([-1, 1] per dimension, padded steps excluded), over
held-out observations decoded one at a time (batch 1, as a robot queries the policy), so
``nfe`` is the passes one chunk costs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch

from vla.data import ChunkTensors
from vla.model import VLAModel


def eval_indices(data: ChunkTensors, n: int, seed: int = 0) -> list[int]:
    """``n`` fixed random item indices of ``data`` (all of them if fewer)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=g)
    return sorted(int(i) for i in perm[:n])


def action_error(model: VLAModel, data: ChunkTensors, indices: Sequence[int],
                 decoder: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Decode each observation alone and compare with the demonstration.

    Returns:
        ``{"l1": mean error, "nfe": mean passes per chunk, "nfe_max", "ms": median
        predict_chunk ms, "tokens": list of token-decoded rows (token heads only)}``.
    """
    errs, nfes, times = [], [], []
    for i in indices:
        obs = data.obs_dict([i])
        kw = dict(kwargs)
        if model.config.head in ("flow",) and "generator" not in kw:
            kw["generator"] = torch.Generator(device=model.device).manual_seed(i)
        actions, stats = model.predict_chunk(obs, decoder=decoder, **kw)
        pred = model.tokenizer.normalize(torch.as_tensor(actions[0], device=model.device))
        true = model.tokenizer.normalize(data.actions[i].to(model.device))
        valid = ~data.is_pad[i].to(model.device)
        errs.append(float((pred - true).abs()[valid].mean()))
        nfes.append(stats["nfe"])
        times.append(stats["total_ms"])
    return {"l1": statistics.fmean(errs), "nfe": statistics.fmean(nfes), "nfe_max": max(nfes),
            "ms": statistics.median(times), "n": len(errs)}


def repetition_rate(tokens: torch.Tensor) -> float:
    """Share of positions whose token equals the previous one (collapse shows as a rise)."""
    if tokens.shape[-1] < 2:
        return 0.0
    return float((tokens[..., 1:] == tokens[..., :-1]).float().mean())


def early_exit_settings(max_iters: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 12)
                        ) -> list[tuple[str, dict[str, Any]]]:
    """The relaxed-convergence settings swept: exact, unchanged-tail, tolerances, caps."""
    from decoding import EarlyExit

    out: list[tuple[str, dict[str, Any]]] = [("exact", {})]
    out.append(("unchanged", {"early_exit": EarlyExit(on_unchanged=True)}))
    for tol in (1, 2, 4):
        out.append((f"tol{tol}", {"early_exit": EarlyExit(on_unchanged=True, tol=tol)}))
    for m in max_iters:
        out.append((f"max{m}", {"early_exit": EarlyExit(on_unchanged=True, max_iters=m)}))
    return out


def sweep_early_exit(model: VLAModel, data: ChunkTensors, indices: Sequence[int],
                     reference_l1: float, budget: float = 1.1) -> dict[str, Any]:
    """Passes vs action error of Jacobi early-exit settings; choose the cheapest in budget.

    Args:
        model: AR-head model (teacher or consistency-distilled student).
        data: Held-out tensors.
        indices: Items to decode.
        reference_l1: The AR baseline's action error on the same items.
        budget: Allowed error as a multiple of ``reference_l1``.

    Returns:
        ``{"curve": [{name, nfe, l1, ...}], "chosen": name, "chosen_setting": {...}}``.
    """
    curve = []
    for name, kw in early_exit_settings():
        res = action_error(model, data, indices, decoder="jacobi", **kw)
        ee = kw.get("early_exit")
        setting = ({"on_unchanged": ee.on_unchanged, "tol": ee.tol, "max_iters": ee.max_iters}
                   if ee is not None else None)
        curve.append({"name": name, "setting": setting, **res})
    ok = [c for c in curve if c["l1"] <= budget * reference_l1]
    chosen = min(ok, key=lambda c: (c["nfe"], c["l1"])) if ok else min(curve,
                                                                         key=lambda c: c["l1"])
    return {"curve": curve, "reference_l1": reference_l1, "budget": budget,
            "chosen": chosen["name"], "chosen_setting": chosen["setting"],
            "within_budget": bool(ok)}


def instruction_sensitivity(model: VLAModel, data: ChunkTensors, indices: Sequence[int],
                            alternatives: Sequence[str] | None = None) -> float:
    """Mean |change| of the chunk (normalized units) when the instruction is swapped.

    Each item is decoded with its own instruction and with the next one in the sorted
    ``alternatives`` (default: the instructions of ``data``; another target as a rule). A
    policy that grounds language changes its chunk; one near 0 ignores the instruction and
    cannot tell targets apart.
    """
    pool = sorted(set(alternatives if alternatives is not None else data.instructions))
    if len(pool) < 2:
        raise ValueError("instruction_sensitivity needs two or more distinct instructions")
    changes = []
    for i in indices:
        obs = data.obs_dict([i])
        kw = {}
        if model.config.head == "flow":
            kw = {"generator": torch.Generator(device=model.device).manual_seed(i)}
        a = model.tokenizer.normalize(torch.as_tensor(model.predict_chunk(obs, **kw)[0],
                                                      device=model.device))
        own = obs["instruction"][0]
        others = [t for t in pool if t != own]
        obs["instruction"] = [next((t for t in others if t > own), others[0])]
        if model.config.head == "flow":
            kw = {"generator": torch.Generator(device=model.device).manual_seed(i)}
        b = model.tokenizer.normalize(torch.as_tensor(model.predict_chunk(obs, **kw)[0],
                                                      device=model.device))
        changes.append(float((a - b).abs().mean()))
    return statistics.fmean(changes)
