"""Real-time chunking in every decoder: a frozen prefix is reproduced and continued.

AR and Jacobi teacher-force the frozen tokens (greedy Jacobi with a prefix still equals greedy
AR with it), masked diffusion starts them unmasked and never re-masks them, and flow sampling
with RTC's inpainting guidance lands on the frozen steps within a tolerance and continues
them; the frozen part is never counted in ``nfe``.
"""

from __future__ import annotations

import math

import pytest
import torch

from decoding import EarlyExit, Inpainting, autoregressive, flow_sample, jacobi, masked_diffusion
from decoding import soft_mask as rtc_mask

CASES = [(0, 1, 1, 12, 3), (1, 2, 3, 10, 1), (2, 3, 2, 9, 8), (3, 2, 4, 8, 0)]


def _reference_ar(model, ids, n):
    """Greedy AR recomputing the whole sequence each step (no KV cache)."""
    seq = ids
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=seq, use_cache=False).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, ids.shape[1]:]


@pytest.mark.parametrize(("seed", "batch", "prompt", "n", "d"), CASES)
def test_ar_and_jacobi_reproduce_and_continue_a_frozen_prefix(gpt2_factory, seed, batch,
                                                              prompt, n, d):
    model = gpt2_factory(seed)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (batch, prompt), generator=gen)
    prefix = torch.randint(0, 64, (batch, d), generator=gen)
    ar = autoregressive(model, ids, n, prefix_tokens=prefix)
    assert torch.equal(ar.tokens[:, :d], prefix)
    assert torch.equal(ar.tokens[:, d:], _reference_ar(model, torch.cat([ids, prefix], 1), n - d))
    assert ar.nfe == n - d  # the frozen tokens are not decoded
    for block, init in [(1, "repeat"), (3, "prompt"), (n, "repeat")]:
        jr = jacobi(model, ids, n, block_size=block, init=init, prefix_tokens=prefix)
        assert torch.equal(jr.tokens, ar.tokens), (block, init)
        assert jr.nfe <= ar.nfe and sum(jr.stats["accepted_per_iter"]) == n - d
    ee = jacobi(model, ids, n, early_exit=EarlyExit(max_iters=1), prefix_tokens=prefix)
    assert torch.equal(ee.tokens[:, :d], prefix)  # early exit never touches frozen positions


def test_frozen_prefix_changes_what_follows_and_full_prefix_costs_nothing(gpt2_factory):
    model = gpt2_factory(0)
    ids = torch.tensor([[5, 9]])
    plain = autoregressive(model, ids, 8)
    other = (plain.tokens[:, :3] + 7) % 64
    frozen = autoregressive(model, ids, 8, prefix_tokens=other)
    assert not torch.equal(frozen.tokens[:, 3:], plain.tokens[:, 3:])
    full = jacobi(model, ids, 4, prefix_tokens=plain.tokens[0, :4])  # [d] shared by rows
    assert full.nfe == 0 and torch.equal(full.tokens, plain.tokens[:, :4])
    with pytest.raises(ValueError, match="prefix_tokens"):
        autoregressive(model, ids, 2, prefix_tokens=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix_tokens"):
        jacobi(model, ids, 4, prefix_tokens=torch.zeros(1, 2))


@pytest.mark.parametrize("remask", [False, True])
def test_masked_diffusion_starts_frozen_positions_unmasked(remask):
    vocab, mask, length, d = 12, 11, 10, 4
    gen = torch.Generator().manual_seed(0)
    prefix = torch.tensor([[3, 1, 4, 1], [5, 9, 2, 6]])
    seen = []

    def denoiser(tokens):  # prefers token (left neighbour + 1), so the prefix shapes the rest
        seen.append(tokens.clone())
        logits = torch.randn(*tokens.shape, vocab, generator=gen)
        prev = torch.roll(tokens, 1, dims=1).clamp_max(vocab - 2)
        logits.scatter_(-1, ((prev + 1) % (vocab - 1))[..., None], 3.0)
        return logits

    r = masked_diffusion(denoiser, length, steps=4, mask_id=mask, batch_size=2,
                         prefix_tokens=prefix, remask=remask, generator=gen)
    assert torch.equal(r.tokens[:, :d], prefix)
    assert all(torch.equal(x[:, :d], prefix) for x in seen)  # never re-masked or changed
    assert bool((seen[0][:, d:] == mask).all()) and r.nfe == len(seen) <= 4
    assert bool((r.tokens != mask).all())
    assert sum(r.stats["committed_per_step"]) - r.stats["remasked"] == 2 * (length - d)
    with pytest.raises(ValueError, match="mask_id"):
        masked_diffusion(denoiser, length, steps=2, mask_id=mask,
                         prefix_tokens=torch.tensor([mask]))


def _gaussian_chunks(horizon, shared=1.0, own=0.1):
    """Exact velocity of chunks ``c * 1 + own * eps`` (c ~ N(0, shared^2)): smooth chunks."""
    cov = shared**2 * torch.ones(horizon, horizon, dtype=torch.float64) + \
        own**2 * torch.eye(horizon, dtype=torch.float64)
    eye = torch.eye(horizon, dtype=torch.float64)

    def velocity(x, t):  # x [B, H, 1]
        tt = t[0].to(torch.float64)
        c = (1 - tt) ** 2 * eye + tt**2 * cov
        return ((tt * cov - (1 - tt) * eye) @ torch.linalg.solve(c, x[..., 0].T)).T[..., None]

    return velocity


def test_rtc_soft_mask_follows_the_paper():
    w = rtc_mask(8, 2, 6)
    assert w[:2].tolist() == [1.0, 1.0] and w[6:].tolist() == [0.0, 0.0]
    c = (6 - 2) / (6 - 2 + 1)
    assert math.isclose(float(w[2]), c * math.expm1(c) / (math.e - 1))
    assert bool((w[2:6].diff() < 0).all()) and bool((w[2:6] > 0).all())
    with pytest.raises(ValueError, match="frozen"):
        rtc_mask(8, 7, 6)


@pytest.mark.parametrize(("solver", "steps"), [("euler", 5), ("euler", 10), ("heun", 5)])
def test_flow_inpainting_lands_on_the_frozen_steps_and_continues_them(solver, steps):
    horizon, d, batch = 8, 3, 64
    x0 = torch.randn(batch, horizon, 1, generator=torch.Generator().manual_seed(0),
                     dtype=torch.float64)
    target = torch.full((horizon, 1), 1.5, dtype=torch.float64)
    guide = Inpainting(target, rtc_mask(horizon, d, d))
    v = _gaussian_chunks(horizon)
    plain = flow_sample(v, x0.shape, steps=steps, solver=solver, x0=x0)
    rtc = flow_sample(v, x0.shape, steps=steps, solver=solver, x0=x0, inpainting=guide)
    assert rtc.nfe == plain.nfe and rtc.stats["guided"]
    # The stated tolerance on the frozen steps (guidance is soft; >= 5 steps): mean |err| < 0.15,
    # max < 0.5 on a target 1.5 off the prior's mean (the unguided sample misses it by > 0.5).
    err = (rtc.samples[:, :d] - 1.5).abs()
    assert float(err.mean()) < 0.15 and float(err.max()) < 0.5, err
    assert float((plain.samples[:, :d] - 1.5).abs().mean()) > 0.5
    assert float((rtc.samples[:, d:] - 1.5).abs().mean()) < 0.3  # continued, not jumped


def test_flow_inpainting_runs_under_inference_mode_with_a_module():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3)
    with torch.inference_mode():
        guide = Inpainting(torch.zeros(4, 3), rtc_mask(4, 2, 3))
        r = flow_sample(lambda x, t: net(x) + t[:, None, None], (2, 4, 3), steps=3,
                        inpainting=guide, generator=torch.Generator().manual_seed(0))
    assert r.samples.shape == (2, 4, 3) and bool(torch.isfinite(r.samples).all())
    with pytest.raises(ValueError, match="inpainting"):
        flow_sample(lambda x, t: x, (1, 2), steps=1, inpainting="yes")
