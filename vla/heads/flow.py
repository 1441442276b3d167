"""The flow-matching head: a continuous chunk integrated from noise (pi0's action expert).

Usage: ``z, nfe, stats = model.head.decode(model, cache, B, "flow", steps=5, solver="heun")``

Training: linear interpolant x_t = (1 - t) noise + t actions, target velocity actions - noise,
MSE; t drawn as pi0 does (noise level 1 - t ~ Beta(1.5, 1)) or uniform
(``config.flow_time_dist``). Decoding is :func:`decoding.flow_sample` (Euler or Heun, K steps)
with the head as the velocity field over the cached prefix.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import DynamicCache

from vla.heads.base import ActionHead, DecoderFamily, expand_cache

if TYPE_CHECKING:
    from vla.config import VLAConfig
    from vla.heads.base import RunFn
    from vla.model import VLAModel


class FlowHead(ActionHead):
    """Flow matching over the normalized continuous chunk."""

    name = "flow"
    families = (
        DecoderFamily("flow", "flow", "flow-matching head, K integration steps (Euler by "
                      "default; a Heun step costs 2 passes)", steps=10, steps_symbol="K",
                      solvers=("euler", "heun"), checkpoint="flow", stochastic=True,
                      plot_family="flow"),
    )

    def __init__(self, config: VLAConfig) -> None:
        super().__init__(config)
        d, n_act = config.d_model, config.action_dim
        self.act_in = nn.Linear(n_act, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.act_out = nn.Linear(d, n_act)

    def time_embed(self, t: torch.Tensor | float, batch: int) -> torch.Tensor:
        """Sinusoidal embedding of the flow time, through an MLP: (B, d)."""
        dtype, device = self.act_in.weight.dtype, self.act_in.weight.device
        t = torch.as_tensor(t, dtype=dtype, device=device).reshape(-1).expand(batch)
        half = self.config.d_model // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=device) / half)
        ang = t[:, None] * 1000.0 * freqs.to(dtype)[None]
        return self.time_mlp(torch.cat([ang.sin(), ang.cos()], dim=-1))

    def velocity(self, model: VLAModel, x_t: torch.Tensor, t: torch.Tensor | float,
                 cache: DynamicCache) -> torch.Tensor:
        """Normalized noisy chunk (B, H, D) at time t (0 noise, 1 data) -> velocity."""
        b = x_t.shape[0]
        h = self.act_in(x_t.to(self.act_in.weight.dtype)) + self.time_embed(t, b)[:, None]
        h = model.backbone.run(h, expand_cache(cache, b), append=False, causal=False)
        return self.act_out(h)

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE between the predicted and the interpolant's velocity."""
        target = model.tokenizer.normalize(actions).to(model.dtype)
        b, dev = target.shape[0], target.device
        w = valid_steps[..., None].to(target.dtype)
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(dev)
        t = flow_times(b, self.config.flow_time_dist, generator).to(dev, target.dtype)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * target
        v = self.act_out(run(self.act_in(x_t) + self.time_embed(t, b)[:, None], False))
        err = (v - (target - noise)).pow(2)
        loss = (err * w).sum() / (w.sum() * self.config.action_dim).clamp_min(1.0)
        return loss, {"loss": float(loss.detach())}

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """:func:`decoding.flow_sample` (10 Euler steps by default), clamped to [-1, 1].

        With ``prefix=`` (an :class:`~vla.heads.base.ActionPrefix`) the sample is guided by
        RTC's inpainting (:mod:`decoding.inpainting`): target the previous actions, weight 1
        on the ``d`` committed steps, decaying over the rest of the overlap; same step count,
        one extra backward pass per velocity call. The committed steps are reproduced within
        the guidance's tolerance, not exactly.
        """
        import decoding

        kwargs = {"steps": 10, "solver": "euler", **kwargs}
        cfg = self.config
        prefix = kwargs.pop("prefix", None)
        if prefix is not None:
            m = prefix.actions.shape[1]
            target = torch.zeros(batch, cfg.horizon, cfg.action_dim, dtype=model.dtype,
                                 device=model.device)
            target[:, :m] = prefix.actions.to(target.dtype)
            kwargs["inpainting"] = decoding.Inpainting(
                target, decoding.soft_mask(cfg.horizon, prefix.frozen, m))
            cache = grad_cache(cache)
        res = decoding.flow_sample(lambda x, t: self.velocity(model, x, t, cache),
                                   (batch, cfg.horizon, cfg.action_dim), dtype=model.dtype,
                                   device=model.device, **kwargs)
        return res.samples.clamp(-1, 1), int(res.nfe), dict(getattr(res, "stats", {}) or {})


def grad_cache(cache: DynamicCache) -> DynamicCache:
    """A copy of ``cache`` usable in autograd (made outside ``torch.inference_mode``)."""
    with torch.inference_mode(False):
        out = DynamicCache()
        for i, layer in enumerate(cache.layers):
            out.update(layer.keys.clone(), layer.values.clone(), i)
    return out


def flow_times(batch: int, dist: str, generator: torch.Generator | None) -> torch.Tensor:
    """Training times t in (0, 1), t = 1 at the data; pi0's Beta(1.5, 1) on 1 - t or uniform."""
    if dist == "uniform":
        return torch.rand(batch, generator=generator) * 0.999 + 0.0005
    # Beta(1.5, 1) via inverse CDF: F(s) = s^1.5  =>  s = u^(2/3).
    u = torch.rand(batch, generator=generator)
    noise_level = u.pow(2.0 / 3.0) * 0.999 + 0.001
    return 1.0 - noise_level
