"""Training losses of the four heads, each one pass over [prefix | action positions].

* ``ar``: next-token cross-entropy over the H x D bin tokens, input = [BOS, tokens[:-1]].
* ``diffusion``: masked cross-entropy; per sample a ratio r ~ U(0, 1), ``ceil(cos(pi/2 r) L)``
  positions replaced by ``[MASK]`` (MaskGIT's cosine schedule), loss on masked positions.
* ``flow``: linear interpolant x_t = (1 - t) noise + t actions, target velocity
  actions - noise, MSE; t drawn as pi0 does (noise level 1 - t ~ Beta(1.5, 1)) or uniform.
* ``oft``: L1 between the one-pass chunk and the normalized actions.

Padded action steps (``action_is_pad``) never count in a loss. With
``config.aux_target_weight`` every head adds ``weight x`` the MSE of an auxiliary regression,
from the mean of the prefix's final states, of the demo's grasp and release points (normalized
like the state; items whose episode never grasps are left out).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from vla.model import Observation, VLAModel


def head_loss(model: VLAModel, obs: Observation, actions: torch.Tensor,
              is_pad: torch.Tensor | None, generator: torch.Generator | None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and metrics of ``model``'s head on one batch (see the module docstring)."""
    cfg = model.config
    dev = model.device
    actions = actions.to(dev)
    if actions.shape[1:] != (cfg.horizon, cfg.action_dim):
        raise ValueError(f"actions must be (B, {cfg.horizon}, {cfg.action_dim}), got "
                         f"{tuple(actions.shape)}")
    prefix = model.prefix_tokens(obs)
    aux_on = cfg.aux_target_weight > 0 and obs.aux is not None
    states: dict[str, torch.Tensor] = {}

    def run(x: torch.Tensor, causal: bool) -> torch.Tensor:
        if not aux_on:
            return model.backbone.run_full(prefix, x, causal=causal)
        h, states["prefix"] = model.backbone.run_full(prefix, x, causal=causal,
                                                      with_prefix=True)
        return h

    loss, metrics = _head_loss(model, prefix, actions, is_pad, generator, run)
    if aux_on:
        aux = _aux_loss(model, states["prefix"], obs.aux.to(dev))
        metrics["aux"] = float(aux.detach())
        loss = loss + cfg.aux_target_weight * aux
    return loss, metrics


def _aux_loss(model: VLAModel, prefix_states: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    """MSE of the grasp/release point regression on the items whose target is valid."""
    norm = model.state_norm
    xyz = slice(0, 3)
    mean, std = norm.mean[xyz].to(aux.dtype), norm.std[xyz].to(aux.dtype)
    target = torch.cat([(aux[:, 0:3] - mean) / std, (aux[:, 3:6] - mean) / std], dim=-1)
    pred = model.aux_head(prefix_states.mean(1)).float()
    w = aux[:, 6:7].float()
    return ((pred - target.float()).pow(2) * w).sum() / (w.sum() * 6).clamp_min(1.0)


def noisy_inputs(inputs: torch.Tensor, p: float, n_bins: int,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Teacher-forced AR inputs with each token after BOS replaced by a random bin w.p. ``p``.

    The ``ar_input_noise`` regularizer: the head cannot copy its neighbours' tokens and has to
    read the observation. ``p = 0`` returns ``inputs`` unchanged.
    """
    if p <= 0:
        return inputs
    noisy = torch.rand(inputs.shape, generator=generator).to(inputs.device) < p
    noisy[:, 0] = False  # BOS stays
    random_bins = torch.randint(n_bins, inputs.shape, generator=generator).to(inputs.device)
    return torch.where(noisy, random_bins, inputs)


def _head_loss(model: VLAModel, prefix: torch.Tensor, actions: torch.Tensor,
               is_pad: torch.Tensor | None, generator: torch.Generator | None, run
               ) -> tuple[torch.Tensor, dict[str, float]]:
    cfg, dev, b = model.config, model.device, actions.shape[0]
    valid_steps = (~is_pad.bool()).to(dev) if is_pad is not None else torch.ones(
        b, cfg.horizon, dtype=torch.bool, device=dev)
    if cfg.head in ("ar", "diffusion"):
        targets = model.tokenizer.encode(actions)  # (B, H*D)
        valid = valid_steps.repeat_interleave(cfg.action_dim, dim=-1)
        if cfg.head == "ar":
            inputs = torch.cat([model.bos_ids(b), targets[:, :-1]], dim=1)
            if model.training:
                inputs = noisy_inputs(inputs, cfg.ar_input_noise, cfg.n_bins, generator)
            h = run(model.tok_embed(inputs), True)
        else:
            masked = _cosine_mask(b, targets.shape[1], generator).to(dev)
            valid = valid & masked
            inputs = torch.where(masked, torch.full_like(targets, cfg.mask_id), targets)
            h = run(model.tok_embed(inputs), False)
        logits = model.lm_head(h)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        w = valid.flatten().float()
        loss = (ce * w).sum() / w.sum().clamp_min(1.0)
        acc = ((logits.argmax(-1) == targets).float().flatten() * w).sum() / w.sum().clamp_min(1)
        return loss, {"loss": float(loss.detach()), "token_acc": float(acc)}
    target = model.tokenizer.normalize(actions).to(model.dtype)
    w = valid_steps[..., None].to(target.dtype)
    if cfg.head == "flow":
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(dev)
        t = _flow_times(b, cfg.flow_time_dist, generator).to(dev, target.dtype)
        x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * target
        x = model.act_in(x_t) + model._time_embed(t, b)[:, None]
        v = model.act_out(run(x, False))
        err = (v - (target - noise)).pow(2)
    else:
        q = model.queries.unsqueeze(0).expand(b, -1, -1)
        h = run(q, False)
        err = (model.act_out(h + model.act_mlp(h)) - target).abs()
    loss = (err * w).sum() / (w.sum() * cfg.action_dim).clamp_min(1.0)
    return loss, {"loss": float(loss.detach())}


def _cosine_mask(batch: int, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """Boolean (B, L) mask: per row ``ceil(cos(pi/2 r) L)`` random positions, r ~ U(0, 1)."""
    r = torch.rand(batch, generator=generator)
    n_mask = torch.ceil(torch.cos(math.pi / 2 * r) * length).clamp(1, length).long()
    scores = torch.rand(batch, length, generator=generator)
    rank = scores.argsort(dim=1).argsort(dim=1)
    return rank < n_mask[:, None]


def _flow_times(batch: int, dist: str, generator: torch.Generator | None) -> torch.Tensor:
    """Training times t in (0, 1), t = 1 at the data; pi0's Beta(1.5, 1) on 1 - t or uniform."""
    if dist == "uniform":
        return torch.rand(batch, generator=generator) * 0.999 + 0.0005
    # Beta(1.5, 1) via inverse CDF: F(s) = s^1.5  =>  s = u^(2/3).
    u = torch.rand(batch, generator=generator)
    noise_level = u.pow(2.0 / 3.0) * 0.999 + 0.001
    return 1.0 - noise_level
