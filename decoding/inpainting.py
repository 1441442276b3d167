"""Inpainting guidance for flow sampling: real-time chunking (RTC) of Black et al. 2025.

Usage: ``flow_sample(v, (B, H, D), steps=5, inpainting=Inpainting(prev, soft_mask(H, d, m)))``

While a chunk is being generated the robot keeps executing the previous one, so the first
``d`` actions of the new chunk are already committed and the next ones should continue the
previous plan smoothly. RTC ("Real-Time Execution of Action Chunking Flow Policies") guides
each velocity evaluation towards a target ``Y`` (the previous chunk, time-aligned) with
pseudo-inverse guidance (PiGDM): with ``A1 = x + (1 - t) v(x, t)`` the one-step estimate of
the clean sample,

    v_guided = v + min(beta, (1 - t) / (t r2)) * J^T (W * (Y - A1)),  J = dA1/dx,
    r2 = (1 - t)^2 / (t^2 + (1 - t)^2),

where ``W`` is a soft mask over the chunk steps: 1 on the ``d`` committed steps, decaying
exponentially over the rest of the overlap with the previous chunk, 0 after it
(:func:`soft_mask`). ``J^T (...)`` is one vector-Jacobian product, so each guided velocity call
is one forward and one backward pass of the velocity model; the step count (``nfe``) is
unchanged. Time runs from 0 (noise) to 1 (data), as in :mod:`decoding.flow` and the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_mask(horizon: int, frozen: int, overlap: int) -> torch.Tensor:
    """RTC's guidance weights over the ``horizon`` steps of a chunk (float64 ``[horizon]``).

    Args:
        horizon: Chunk length ``H``.
        frozen: Committed steps ``d`` (weight 1).
        overlap: Steps covered by the previous chunk (``H - s`` in the paper, ``s`` the
            execution horizon); steps ``d <= i < overlap`` get
            ``c (e^c - 1) / (e - 1)`` with ``c = (overlap - i) / (overlap - d + 1)``, later
            steps 0.

    Raises:
        ValueError: Unless ``0 <= frozen <= overlap <= horizon``.
    """
    if not 0 <= frozen <= overlap <= horizon:
        raise ValueError(f"need 0 <= frozen <= overlap <= horizon, got frozen={frozen}, "
                         f"overlap={overlap}, horizon={horizon}")
    i = torch.arange(horizon, dtype=torch.float64)
    c = (overlap - i) / (overlap - frozen + 1)
    decay = c * torch.expm1(c) / (math.e - 1)
    return torch.where(i < frozen, 1.0, torch.where(i < overlap, decay, 0.0))


@dataclass(frozen=True)
class Inpainting:
    """What a guided flow sample should continue.

    Attributes:
        target: ``Y``, broadcastable to the sample shape ``[B, H, ...]`` (the previous chunk,
            time-aligned to the new one; rows past the overlap are ignored, weight 0).
        weights: ``W`` per chunk step, ``[H]`` or ``[B, H]`` (see :func:`soft_mask`).
        max_guidance: ``beta``, the clip of the guidance weight (5 in the paper).
    """

    target: torch.Tensor
    weights: torch.Tensor
    max_guidance: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.target, torch.Tensor) or not isinstance(self.weights,
                                                                        torch.Tensor):
            raise ValueError("target and weights must be tensors")
        if self.weights.dim() not in (1, 2):
            raise ValueError(f"weights must be [H] or [B, H], got {tuple(self.weights.shape)}")
        if not math.isfinite(self.max_guidance) or self.max_guidance < 0:
            raise ValueError(f"max_guidance must be a finite number >= 0, got "
                             f"{self.max_guidance!r}")


def guided_velocity(velocity: Velocity, inpainting: Inpainting) -> Velocity:
    """``velocity`` wrapped with RTC's inpainting guidance (see the module docstring).

    The wrapped call enables autograd (also inside ``torch.inference_mode``, on a copy of
    ``x``), so ``velocity`` must be differentiable in ``x`` and must not save inference-mode
    tensors for backward (a model under ``inference_mode`` clones its cached prefix first).
    """

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)
            tt = t.detach().clone().to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
            v = velocity(x_in, t.clone())
            a1 = x_in + (1 - tt) * v
            w = inpainting.weights.to(x.dtype).to(x.device)
            w = w.reshape(*([1] if w.dim() == 1 else [w.shape[0]]), w.shape[-1],
                          *([1] * (x.dim() - 2)))
            err = (inpainting.target.to(x.device, x.dtype) - a1.detach()) * w
            (grad,) = torch.autograd.grad(a1, x_in, grad_outputs=err)
        r2 = (1 - tt) ** 2 / (tt**2 + (1 - tt) ** 2)
        scale = torch.where(tt > 0, (1 - tt) / (tt * r2).clamp_min(1e-12),
                            torch.full_like(tt, math.inf)).clamp_max(inpainting.max_guidance)
        return (v.detach() + scale * grad).clone()

    return guided
