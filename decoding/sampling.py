"""Turning scores into token choices: greedy, temperature, top-k and top-p (nucleus)."""

from __future__ import annotations

import torch


def sampling_probs(scores: torch.Tensor, temperature: float, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """Probabilities that sampling draws from, over the last dimension.

    Order as in transformers' ``generate``: divide by ``temperature``, keep the ``top_k`` best,
    then the smallest set of best tokens whose mass reaches ``top_p``.

    Args:
        scores: Processed logits ``[..., V]`` (``-inf`` marks forbidden tokens).
        temperature: > 0.
        top_k: Keep this many best tokens (``None``: all).
        top_p: Keep the nucleus of this mass (``None``: all).

    Returns:
        Probabilities ``[..., V]`` in float64 (forbidden tokens get exactly 0).
    """
    logits = scores.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample one index per row of ``probs [..., V]``; returns LongTensor ``[...]``."""
    flat = probs.reshape(-1, probs.shape[-1])
    picks = torch.multinomial(flat, 1, generator=generator)
    return picks.reshape(probs.shape[:-1])


def choose(scores: torch.Tensor, temperature: float, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row: argmax when ``temperature == 0``, else a sample."""
    if temperature == 0:
        return scores.argmax(dim=-1)
    return draw(sampling_probs(scores, temperature, top_k, top_p), generator)
