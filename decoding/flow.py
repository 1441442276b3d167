"""Sampling a flow-matching velocity field with Euler or Heun steps.

Time convention: ``t`` runs from 0 (noise) to 1 (data). The training interpolant is
``x_t = (1 - t) * x0 + t * x1`` with ``x0 ~ N(0, I)`` noise and ``x1`` data, and the velocity
field regresses ``x1 - x0``; sampling integrates ``dx/dt = velocity(x, t)`` from ``t = 0`` to
``t = 1``. (openpi's pi0 uses the mirrored convention, noise at ``t = 1``; a head trained that
way passes ``lambda x, t: -v_pi0(x, 1 - t)``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from decoding._checks import check_positive_int
from decoding.inpainting import Inpainting, guided_velocity
from decoding.result import DecodeResult

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SOLVERS = ("euler", "heun")


def time_grid(steps: int, schedule: object = None, *, device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``steps + 1`` integration times from 0 to 1.

    Args:
        steps: Number of integration steps (>= 1).
        schedule: ``None`` (uniform), a callable mapping uniform ``u`` in [0, 1] to ``t`` (a
            monotone warp with ``f(0) = 0``, ``f(1) = 1``; applied to a tensor), or an explicit
            increasing sequence of ``steps + 1`` times from 0 to 1.
        device: Device of the grid.
        dtype: Float dtype of the grid.

    Returns:
        1-D tensor of ``steps + 1`` increasing times with ``t[0] = 0`` and ``t[-1] = 1``.
    """
    uniform = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if schedule is None:
        grid = uniform
    elif callable(schedule):
        grid = torch.as_tensor(schedule(uniform), dtype=torch.float64)
    elif isinstance(schedule, Sequence | torch.Tensor):
        grid = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    else:
        raise ValueError(f"schedule must be None, a callable or a sequence, got {schedule!r}")
    if grid.shape != (steps + 1,):
        raise ValueError(f"schedule must give steps + 1 = {steps + 1} times, got {grid.shape}")
    if abs(float(grid[0])) > 1e-9 or abs(float(grid[-1]) - 1) > 1e-9 or \
            bool((grid[1:] <= grid[:-1]).any()):
        raise ValueError("schedule must increase strictly from 0 to 1")
    return grid.to(device=device, dtype=dtype)


@torch.no_grad()
def flow_sample(velocity: Velocity, shape: Sequence[int], *, steps: int, solver: str = "euler",
                schedule: object = None, generator: torch.Generator | None = None,
                x0: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None,
                inpainting: Inpainting | None = None) -> DecodeResult:
    """Integrate ``velocity`` from Gaussian noise (t=0) to data (t=1).

    With ``inpainting`` every velocity call is RTC's guided velocity
    (:mod:`decoding.inpainting`): the sample is pulled towards ``inpainting.target`` where its
    soft mask is positive, with the same step count and ``nfe`` (each guided call adds one
    backward pass through ``velocity``, counted in wall time, not in ``nfe``).

    Args:
        velocity: ``velocity(x_t, t) -> v`` with ``x_t`` of ``shape`` and ``t`` a tensor of
            shape ``[shape[0]]`` (one time per sample).
        shape: Sample shape, batch first.
        steps: Integration steps (>= 1).
        solver: ``"euler"`` (1 call per step) or ``"heun"`` (2 calls per step: Euler
            predictor, trapezoidal corrector).
        schedule: Time grid, see :func:`time_grid` (default uniform).
        generator: Random generator for the initial noise.
        x0: Initial noise to start from instead of drawing it (must have ``shape``).
        dtype: Float dtype when drawing the noise.
        device: Device when drawing the noise.
        inpainting: Optional real-time-chunking guidance (:class:`~decoding.Inpainting`).

    Returns:
        :class:`DecodeResult` with ``samples`` (the state at t=1), ``nfe`` (velocity calls)
        and ``stats`` ``{"times": [...]}``; ``tokens`` and ``lengths`` are ``None``.
    """
    check_positive_int(steps, "steps")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive sizes, got {shape}")
    if x0 is None:
        x = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    elif tuple(x0.shape) != shape:
        raise ValueError(f"x0 must have shape {shape}, got {tuple(x0.shape)}")
    else:
        x = x0.clone()
    if inpainting is not None:
        if not isinstance(inpainting, Inpainting):
            raise ValueError(f"inpainting must be None or an Inpainting, got {inpainting!r}")
        velocity = guided_velocity(velocity, inpainting)
    # The grid stays on the host (steps and times are Python numbers, in x's dtype), so the
    # loop makes no host-device transfer and can be captured in a CUDA graph.
    grid = time_grid(steps, schedule, dtype=x.dtype)
    batch_t = torch.ones(shape[0], device=x.device, dtype=x.dtype)
    nfe = 0
    for k in range(steps):
        t, h = float(grid[k]), float(grid[k + 1] - grid[k])
        # Euler step with the slope at the start of the interval.
        v = velocity(x, t * batch_t)
        nfe += 1
        if solver == "euler":
            x = x + h * v
            continue
        # Heun: average the start slope with the slope at the Euler prediction.
        v_end = velocity(x + h * v, float(grid[k + 1]) * batch_t)
        nfe += 1
        x = x + 0.5 * h * (v + v_end)
    stats = {"times": grid.tolist(), **({"guided": True} if inpainting is not None else {})}
    return DecodeResult(tokens=None, lengths=None, nfe=nfe, stats=stats, samples=x)
