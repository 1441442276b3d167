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

    def read(self, h: torch.Tensor) -> torch.Tensor:
        """Final states of the queries (B, H, d) -> normalized chunk (B, H, D)."""
        return self.act_out(h + self.act_mlp(h))

    def decode_one_pass(self, model: VLAModel, prefix: torch.Tensor) -> torch.Tensor:
        """The ``oft`` chunk from prefix embeddings (B, P, d) in one pass over [prefix | queries].

        The training layout (:meth:`~vla.backbone.Backbone.run_full`): the same attention
        pattern as encoding the prefix and then the queries against its cache, in one pass
        instead of two (what the fast path runs; equal to :meth:`decode` up to float rounding).
        """
        q = self.queries.unsqueeze(0).expand(prefix.shape[0], -1, -1)
        return self.read(model.backbone.run_full(prefix, q, causal=False)).clamp(-1, 1)

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 between the one-pass chunk and the normalized actions."""
        target = model.tokenizer.normalize(actions).to(model.dtype)
        w = valid_steps[..., None].to(target.dtype)
        h = run(self.queries.unsqueeze(0).expand(target.shape[0], -1, -1), False)
        err = (self.read(h) - target).abs()
        loss = (err * w).sum() / (w.sum() * self.config.action_dim).clamp_min(1.0)
        return loss, {"loss": float(loss.detach())}

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """One pass; ``kwargs`` must be empty but for ``prefix=``.

        Real-time chunking: the head was not trained to condition on a prefix (that is
        training-time RTC, which needs retraining), so with ``prefix=`` (an
        :class:`~vla.heads.base.ActionPrefix`) the one pass is unchanged and only its first
        ``d`` steps are replaced by the committed actions (stats ``frozen_replaced: d``). The
        steps the robot executes after them are the head's own, so the join is not smoothed.
        """
        prefix = kwargs.pop("prefix", None)
        if kwargs:
            raise ValueError(f"the oft decoder takes no settings, got {sorted(kwargs)}")
        q = self.queries.unsqueeze(0).expand(batch, -1, -1)
        h = model.backbone.run(q, expand_cache(cache, batch), append=False, causal=False)
        chunk = self.read(h).clamp(-1, 1)
        if prefix is None or prefix.frozen == 0:
            return chunk, 1, {}
        d = prefix.frozen
        chunk = torch.cat([prefix.actions[:, :d].to(chunk.dtype), chunk[:, d:]], dim=1)
        return chunk, 1, {"frozen_replaced": d}
