"""Masked diffusion and flow sampling.

Masked diffusion fills every position within `steps` calls, early commit saves calls and
remasking revisits tokens; flow_sample converges on an analytic velocity field.
"""

from __future__ import annotations

import math

import pytest
import torch

from decoding import flow_sample, masked_diffusion
from decoding.flow import time_grid

V, MASK = 12, 11


def _noisy_denoiser(seed: int, peak: float):
    """Denoiser preferring a fixed target sequence with confidence ``peak`` per position."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, V - 1, (32,), generator=gen)
    calls = []

    def denoiser(tokens):
        calls.append(tokens.clone())
        length = tokens.shape[1]
        logits = torch.randn(tokens.shape[0], length, V, generator=gen)
        logits.scatter_(-1, target[:length].expand(tokens.shape[0], -1)[..., None], peak)
        return logits

    return denoiser, target, calls


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("order", ["confidence", "margin", "random"])
def test_fills_every_position_within_steps(schedule, order):
    for length, steps in [(1, 1), (7, 3), (16, 12), (5, 9)]:
        denoiser, _, calls = _noisy_denoiser(length, peak=2.0)
        r = masked_diffusion(denoiser, length, steps=steps, mask_id=MASK, batch_size=3,
                             schedule=schedule, order=order, choice_temperature=2.0,
                             generator=torch.Generator().manual_seed(0))
        assert r.nfe == len(calls) <= steps
        assert r.nfe == min(steps, length) if order != "random" else r.nfe <= steps
        assert r.tokens.shape == (3, length) and not bool((r.tokens == MASK).any())
        assert sum(r.stats["committed_per_step"]) == 3 * length


def test_first_call_sees_all_masks_and_schedule_is_monotone():
    denoiser, _, calls = _noisy_denoiser(1, peak=2.0)
    r = masked_diffusion(denoiser, 16, steps=8, mask_id=MASK)
    masked = [int((c == MASK).sum()) for c in calls]
    assert masked[0] == 16 and all(a > b for a, b in zip(masked, masked[1:], strict=False))
    assert r.stats["committed_per_step"][0] == 16 - math.floor(16 * math.cos(math.pi / 16))


def test_early_commit_lowers_nfe_on_confident_denoiser():
    denoiser, target, _ = _noisy_denoiser(2, peak=12.0)
    plain = masked_diffusion(denoiser, 16, steps=10, mask_id=MASK)
    early = masked_diffusion(denoiser, 16, steps=10, mask_id=MASK, early_commit_gap=0.5)
    assert plain.nfe == 10 and early.nfe == 1
    assert early.stats["early_commit_step"] == [0]
    assert torch.equal(early.tokens[0], target[:16]) and torch.equal(plain.tokens[0],
                                                                     target[:16])
    # An unsure denoiser never triggers it.
    unsure, _, _ = _noisy_denoiser(3, peak=0.5)
    assert masked_diffusion(unsure, 16, steps=10, mask_id=MASK, early_commit_gap=0.5).nfe == 10


def test_secondary_remasking_revisits_tokens():
    # Proposals are sampled (temperature 1), so some wrong tokens get committed early; the
    # denoiser gives them low probability later and remasking re-opens them.
    denoiser, target, _ = _noisy_denoiser(4, peak=3.0)
    gen = torch.Generator().manual_seed(0)
    kw = {"steps": 12, "mask_id": MASK, "batch_size": 16, "temperature": 1.0}
    plain = masked_diffusion(denoiser, 24, generator=gen, **kw)
    remask = masked_diffusion(denoiser, 24, remask=True, generator=gen, **kw)
    assert plain.stats["remasked"] == 0 and remask.stats["remasked"] > 0
    assert not bool((remask.tokens == MASK).any())
    acc = [float((r.tokens == target[:24]).float().mean()) for r in (plain, remask)]
    assert acc[1] > acc[0]


def _gaussian_velocity(mu: torch.Tensor, s: float):
    """Exact marginal velocity of x_t = (1-t) x0 + t x1, x0 ~ N(0, I), x1 ~ N(mu, s^2 I)."""

    def velocity(x, t):
        t = t[:, None]
        var = (1 - t) ** 2 + (t * s) ** 2
        return mu + (t * s * s - (1 - t)) / var * (x - t * mu)

    return velocity


def test_flow_sample_converges_and_heun_beats_euler():
    mu, s = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64), 0.5
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = mu + s * x0  # the ODE maps noise x0 to mu + s * x0
    errors = {}
    for solver in ("euler", "heun"):
        for steps in (2, 4, 8, 16):
            r = flow_sample(_gaussian_velocity(mu, s), x0.shape, steps=steps, solver=solver,
                            x0=x0)
            assert r.nfe == steps * (2 if solver == "heun" else 1)
            errors[solver, steps] = float((r.samples - exact).abs().max())
    for solver in ("euler", "heun"):
        seq = [errors[solver, k] for k in (2, 4, 8, 16)]
        assert all(a > b for a, b in zip(seq, seq[1:], strict=False)), seq
    for steps in (2, 4, 8, 16):
        assert errors["heun", steps] < errors["euler", steps]
    # Euler is first order (error halves per doubling); Heun is far more accurate.
    assert 1.6 < errors["euler", 8] / errors["euler", 16] < 2.4
    assert errors["heun", 16] < errors["euler", 16] / 20 and errors["heun", 16] < 5e-3


def test_flow_schedule_and_noise():
    grid = time_grid(4, lambda u: u ** 2, dtype=torch.float64)
    assert torch.allclose(grid, torch.tensor([0, 1 / 16, 1 / 4, 9 / 16, 1], dtype=torch.float64))
    seen = []

    def velocity(x, t):
        seen.append(float(t[0]))
        return torch.ones_like(x)

    r = flow_sample(velocity, (2, 5), steps=4, schedule=[0, 0.1, 0.5, 0.7, 1.0],
                    generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx([0, 0.1, 0.5, 0.7])
    again = flow_sample(velocity, (2, 5), steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(r.samples, again.samples)  # constant field: x1 = x0 + 1
    assert r.samples.shape == (2, 5) and r.tokens is None
