"""Masked (discrete) diffusion decoding, MaskGIT / Discrete-Diffusion-VLA style.

Start from an all-``mask_id`` sequence. Each step calls the denoiser once on the current
tokens, proposes a token at every masked position, scores the proposals (``order``), and keeps
masked only the number the ``schedule`` prescribes for the next step; the last step unmasks
everything, so at most ``steps`` denoiser calls fill all ``length`` positions. Options:
Gumbel noise on the ordering scores (annealed with progress), secondary remasking (committed
tokens compete again and can be re-masked), and Prophet-style early commit (when every masked
position of a row has a top-1/top-2 probability gap of at least ``early_commit_gap``, commit
all of them at once).

Rows of a batch never influence each other: the schedule depends only on the step and the
number of free positions (the same for every row), and ordering, the per-step commit count,
early commit and stopping are decided per row (a row with nothing masked is left as it is
while the others finish; ties in the ordering break by position). With a denoiser that treats
rows independently and deterministic settings (``temperature=0``, ``choice_temperature=0``,
``order`` not ``"random"``) a row of a batch gets exactly the tokens it gets alone. Random
settings draw from one generator for the whole batch, so a row's draws, and hence its tokens,
do depend on the batch it is decoded in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from decoding._checks import check_positive_int, check_prefix_tokens
from decoding.result import DecodeResult
from decoding.sampling import draw

Denoiser = Callable[[torch.Tensor], torch.Tensor]
SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda ratio: math.cos(math.pi / 2 * ratio),
    "linear": lambda ratio: 1.0 - ratio,
}
ORDERS = ("confidence", "margin", "random")


def _check_allowed(allowed: torch.Tensor | None, batch: int, length: int,
                   mask_id: int) -> torch.Tensor | None:
    """Validate the position-local constraint table; returns it as bool ``[B, L, V]``."""
    if allowed is None:
        return None
    if not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool:
        raise ValueError("allowed must be a bool tensor [length, V] or [batch, length, V]")
    if allowed.dim() == 2:
        allowed = allowed[None].expand(batch, -1, -1)
    if allowed.dim() != 3 or allowed.shape[:2] != (batch, length):
        raise ValueError(f"allowed must have shape [{length}, V] or [{batch}, {length}, V], "
                         f"got {tuple(allowed.shape)}")
    if not 0 <= mask_id < allowed.shape[-1]:
        raise ValueError(f"mask_id {mask_id} is outside the vocabulary [0, {allowed.shape[-1]})")
    usable = allowed.clone()
    usable[..., mask_id] = False
    if bool((~usable.any(-1)).any()):
        raise ValueError("allowed leaves some position with no token except mask_id")
    return usable


def _order_scores(probs: torch.Tensor, candidate: torch.Tensor, order: str,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Score each position's candidate; higher is committed first."""
    if order == "random":
        return torch.rand(candidate.shape, generator=generator, device=candidate.device,
                          dtype=probs.dtype)
    p_cand = probs.gather(-1, candidate[..., None])[..., 0]
    if order == "confidence":
        return p_cand.clamp_min(1e-30).log()
    top2 = probs.topk(2, dim=-1).values
    other_best = torch.where(p_cand >= top2[..., 0], top2[..., 1], top2[..., 0])
    return p_cand - other_best


def _masked_after(step: int, steps: int, length: int, schedule: Callable[[float], float]) -> int:
    """How many positions stay masked after ``step`` (0-based) of ``steps``."""
    return 0 if step + 1 >= steps else int(math.floor(length * schedule((step + 1) / steps)))


def _step(x: torch.Tensor, logits: torch.Tensor, is_masked: torch.Tensor, keep_masked: int,
          o: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One denoising step: propose, order, commit. Returns ``(x, is_masked, committed_all)``."""
    logits = logits.double()
    logits[..., o["mask_id"]] = float("-inf")  # the mask token is never a prediction
    if o["allowed"] is not None:
        logits = logits.masked_fill(~o["allowed"], float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    # Propose a token at every position (sampled at temperature > 0, else argmax).
    if o["temperature"] > 0:
        proposal = draw(torch.softmax(logits / o["temperature"], dim=-1), o["generator"])
    else:
        proposal = probs.argmax(-1)
    candidate = torch.where(is_masked, proposal, x)
    # Prophet early commit: every masked position confident -> commit them all now.
    top2 = probs.topk(2, dim=-1).values
    gap = torch.where(is_masked, top2[..., 0] - top2[..., 1], torch.inf).amin(dim=1)
    commit_all = is_masked.any(1) & (gap >= (o["early_commit_gap"] or math.inf))
    # Order: score the candidates (+ annealed Gumbel noise); committed tokens only compete
    # again under secondary remasking.
    score = _order_scores(probs, candidate, o["order"], o["generator"])
    if o["choice_temperature"] > 0:
        u = torch.rand(score.shape, generator=o["generator"], dtype=score.dtype,
                       device=score.device).clamp(1e-20, 1 - 1e-20)
        score = score + o["choice_temperature"] * o["anneal"] * -torch.log(-torch.log(u))
    if not o["remask"]:
        score = torch.where(is_masked, score, torch.inf)
    score = score.masked_fill(o["frozen"], torch.inf)  # frozen positions are never re-masked
    # Keep the `keep_masked` lowest-scored positions masked; at least one new commit per row.
    keep = torch.minimum(torch.full_like(gap, keep_masked, dtype=torch.long),
                         is_masked.sum(1) - 1).clamp_min(0)
    keep = torch.where(commit_all, 0, keep)
    rank = score.argsort(dim=1, stable=True).argsort(dim=1)  # 0 = lowest; a tie: left lower
    new_masked = rank < keep[:, None]
    x = torch.where(new_masked, torch.full_like(x, o["mask_id"]), candidate)
    proposal_top = probs.argmax(-1)
    x = torch.where(commit_all[:, None] & is_masked, proposal_top, x)
    return x, new_masked, commit_all


@torch.no_grad()
def masked_diffusion(denoiser: Denoiser, length: int, *, steps: int, mask_id: int,
                     batch_size: int = 1, schedule: str = "cosine", order: str = "confidence",
                     temperature: float = 0.0, choice_temperature: float = 0.0,
                     remask: bool = False, early_commit_gap: float | None = None,
                     allowed: torch.Tensor | None = None,
                     generator: torch.Generator | None = None,
                     device: torch.device | str | None = None,
                     prefix_tokens: torch.Tensor | None = None) -> DecodeResult:
    """Fill ``length`` masked positions in at most ``steps`` denoiser calls.

    With ``prefix_tokens`` (``d`` frozen tokens, e.g. the committed actions of real-time
    chunking) the first ``d`` positions start unmasked with those tokens and are never
    re-masked or changed (inpainting); the schedule runs over the ``length - d`` others.

    Args:
        denoiser: ``denoiser(tokens [B, L]) -> logits [B, L, V]`` (bidirectional, bound to one
            observation by the model that owns it).
        length: Sequence length ``L`` (>= 1).
        steps: Maximum number of denoiser calls (>= 1).
        mask_id: The mask token id; must lie in ``[0, V)``; never produced as output.
        batch_size: Rows decoded at once.
        schedule: ``"cosine"`` or ``"linear"`` fraction still masked after step ``s``.
        order: Which proposals to commit first: ``"confidence"`` (log-probability),
            ``"margin"`` (top-1 minus top-2 probability) or ``"random"``.
        temperature: Proposal sampling temperature (0: argmax).
        choice_temperature: Scale of the Gumbel noise added to the ordering scores, multiplied
            by ``1 - s / steps`` (MaskGIT / Discrete Diffusion VLA).
        remask: Secondary remasking: committed tokens are scored again each step (by the same
            ``order`` on their current token) and can be re-masked.
        early_commit_gap: Prophet early commit threshold on the top-1/top-2 probability gap
            (``None``: off).
        allowed: Position-local constraints, bool ``[L, V]`` or ``[B, L, V]``.
        generator: Random generator.
        device: Device of the token tensor.
        prefix_tokens: Optional frozen first tokens, LongTensor ``[B, d]`` or ``[d]``,
            ``d <= length``.

    Returns:
        :class:`DecodeResult` with ``tokens [B, L]``, ``lengths`` (all ``L``),
        ``nfe`` (denoiser calls) and ``stats``: ``committed_per_step`` (tokens unmasked at each
        step, summed over rows), ``remasked`` (committed tokens re-masked),
        ``early_commit_step`` (per row, ``-1`` when it never fired) and ``steps_per_row``
        (denoiser calls each row needed: its ``nfe`` alone; ``nfe`` is their max).
    """
    check_positive_int(length, "length")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or mask_id < 0:
        raise ValueError(f"mask_id must be an int >= 0, got {mask_id!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {schedule!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if temperature < 0 or choice_temperature < 0:
        raise ValueError("temperature and choice_temperature must be >= 0")
    if early_commit_gap is not None and not 0 < early_commit_gap <= 1:
        raise ValueError(f"early_commit_gap must be in (0, 1], got {early_commit_gap!r}")
    o = {"mask_id": mask_id, "allowed": _check_allowed(allowed, batch_size, length, mask_id),
         "temperature": temperature, "choice_temperature": choice_temperature, "order": order,
         "remask": remask, "early_commit_gap": early_commit_gap, "generator": generator}
    x = torch.full((batch_size, length), mask_id, dtype=torch.long, device=device)
    is_masked = torch.ones_like(x, dtype=torch.bool)
    prefix = check_prefix_tokens(prefix_tokens, batch_size, length)
    n_frozen = 0 if prefix is None else prefix.shape[1]
    if prefix is not None:  # inpainting: frozen positions start unmasked
        if bool((prefix == mask_id).any()):
            raise ValueError("prefix_tokens must not hold mask_id")
        x[:, :n_frozen] = prefix.to(x.device)
        is_masked[:, :n_frozen] = False
    o["frozen"] = ~is_masked
    stats: dict[str, Any] = {"committed_per_step": [], "remasked": 0,
                             "early_commit_step": [-1] * batch_size,
                             "steps_per_row": [0] * batch_size}
    nfe = 0
    for step in range(steps if n_frozen < length else 0):
        logits = denoiser(x)
        nfe += 1
        if step == 0 and not 0 <= mask_id < logits.shape[-1]:
            raise ValueError(f"mask_id {mask_id} is outside the vocabulary [0, {logits.shape[-1]})")
        o["anneal"] = 1.0 - step / steps
        keep = _masked_after(step, steps, length - n_frozen, SCHEDULES[schedule])
        before = is_masked
        x, is_masked, commit_all = _step(x, logits, is_masked, keep, o)
        stats["committed_per_step"].append(int((before & ~is_masked).sum()))
        stats["remasked"] += int((~before & is_masked).sum())
        for row in commit_all.nonzero()[:, 0].tolist():
            if stats["early_commit_step"][row] < 0:
                stats["early_commit_step"][row] = step
        for row in (before.any(1) & ~is_masked.any(1)).nonzero()[:, 0].tolist():
            stats["steps_per_row"][row] = step + 1
        if not bool(is_masked.any()):
            break
    lengths = torch.full((batch_size,), length, dtype=torch.long, device=x.device)
    return DecodeResult(tokens=x, lengths=lengths, nfe=nfe, stats=stats)
