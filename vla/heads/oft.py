"""The one-pass parallel head (OpenVLA-OFT): empty action queries -> a continuous chunk.

Usage: ``z, nfe, stats = model.head.decode(model, cache, B, "oft")`` (nfe is always 1)

Learned queries, one per chunk step, attend bidirectionally to the cached prefix and to each
other in one backbone pass; an MLP reads the continuous chunk. Trained with L1 to the
normalized demo chunk. The parallel baseline every iterative decoder is measured against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import DynamicCache

from vla.heads.base import ActionHead, DecoderFamily, expand_cache

if TYPE_CHECKING:
    from vla.config import VLAConfig
    from vla.heads.base import RunFn
    from vla.model import VLAModel


class OFTHead(ActionHead):
    """One bidirectional pass over learned action queries, continuous output (L1)."""

    name = "oft"
    families = (
        DecoderFamily("oft", "oft", "one-pass parallel regression head", checkpoint="oft",
                      plot_family="oft"),
    )

    def __init__(self, config: VLAConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.queries = nn.Parameter(torch.randn(config.horizon, d) * 0.02)
        self.act_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.act_out = nn.Linear(d, config.action_dim)
        # Training-time RTC: committed action -> offset of its step's query.
        self.prefix_in = nn.Linear(config.action_dim, d) if config.rtc_train_max else None

    def action_queries(self, batch: int, committed: torch.Tensor | None = None,
                       frozen: torch.Tensor | int = 0) -> torch.Tensor:
        """The (B, H, d) queries; with training-time RTC the first ``frozen`` carry ``committed``.

        Args:
            batch: Rows B.
            committed: Normalized actions (B, m, D), ``m <= H``: the committed steps first.
            frozen: Committed steps per row (an int, or a (B,) tensor in training).
        """
        q = self.queries.unsqueeze(0).expand(batch, -1, -1)
        if self.prefix_in is None or committed is None:
            return q
        horizon, m = self.config.horizon, committed.shape[1]
        steps = torch.arange(horizon, device=q.device)
        frozen = torch.as_tensor(frozen, device=q.device).reshape(-1, 1)
        mask = (steps[None] < frozen.clamp_max(m)).unsqueeze(-1).to(q.dtype)  # (B or 1, H, 1)
        padded = torch.zeros(batch, horizon, committed.shape[2], dtype=q.dtype, device=q.device)
        padded[:, :m] = committed.to(q.dtype)
        return q + mask * self.prefix_in(padded)

    def read(self, h: torch.Tensor) -> torch.Tensor:
        """Final states of the queries (B, H, d) -> normalized chunk (B, H, D)."""
        return self.act_out(h + self.act_mlp(h))

    def decode_one_pass(self, model: VLAModel, prefix: torch.Tensor) -> torch.Tensor:
        """The ``oft`` chunk from prefix embeddings (B, P, d) in one pass over [prefix | queries].

        The training layout (:meth:`~vla.backbone.Backbone.run_full`): the same attention
        pattern as encoding the prefix and then the queries against its cache, in one pass
        instead of two (what the fast path runs; equal to :meth:`decode` up to float rounding).
        """
        q = self.action_queries(prefix.shape[0])
        return self.read(model.backbone.run_full(prefix, q, causal=False)).clamp(-1, 1)

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 between the one-pass chunk and the normalized actions.

        With training-time RTC each row draws its committed steps ``d`` uniformly from
        ``0..rtc_train_max``; its queries carry the demo's first ``d`` actions and its loss
        covers only the later steps.
        """
        target = model.tokenizer.normalize(actions).to(model.dtype)
        batch, horizon = target.shape[:2]
        valid = valid_steps
        if self.prefix_in is None:
            queries = self.action_queries(batch)
        else:
            frozen = torch.randint(0, self.config.rtc_train_max + 1, (batch,),
                                   generator=generator).to(target.device)
            queries = self.action_queries(batch, target, frozen)
            valid = valid_steps & (torch.arange(horizon, device=target.device)[None]
                                   >= frozen[:, None])
        w = valid[..., None].to(target.dtype)
        h = run(queries, False)
        err = (self.read(h) - target).abs()
        loss = (err * w).sum() / (w.sum() * self.config.action_dim).clamp_min(1.0)
        return loss, {"loss": float(loss.detach())}

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """One pass; ``kwargs`` must be empty but for ``prefix=``.

        Real-time chunking with ``prefix=`` (an :class:`~vla.heads.base.ActionPrefix`): a head
        trained with training-time RTC (``rtc_train_max > 0``) conditions its one pass on the
        ``d`` committed steps (stats ``frozen_conditioned: d``); any other head runs the pass
        unchanged (stats ``frozen_replaced: d``), so the steps after the committed ones are its
        own and the join is not smoothed. Either way the first ``d`` steps of the chunk are the
        committed actions exactly.
        """
        prefix = kwargs.pop("prefix", None)
        if kwargs:
            raise ValueError(f"the oft decoder takes no settings, got {sorted(kwargs)}")
        d = 0 if prefix is None else prefix.frozen
        q = self.action_queries(batch, prefix.actions if d else None, d)
        h = model.backbone.run(q, expand_cache(cache, batch), append=False, causal=False)
        chunk = self.read(h).clamp(-1, 1)
        if d == 0:
            return chunk, 1, {}
        chunk = torch.cat([prefix.actions[:, :d].to(chunk.dtype), chunk[:, d:]], dim=1)
        key = "frozen_replaced" if self.prefix_in is None else "frozen_conditioned"
        return chunk, 1, {key: d}
