"""The discrete (masked) diffusion head: all H x D action tokens denoised in parallel.

Usage: ``z, nfe, stats = model.head.decode(model, cache, B, "diffusion", steps=4)``

Training (MaskGIT's cosine schedule): per sample a ratio r ~ U(0, 1), ``ceil(cos(pi/2 r) L)``
positions replaced by ``[MASK]``, cross-entropy on the masked positions. Decoding is
:func:`decoding.masked_diffusion` (adaptive order, remasking, early commit) with the head as a
bidirectional denoiser over the cached prefix.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from vla.heads.base import DecoderFamily, TokenHead, expand_cache, valid_tokens

if TYPE_CHECKING:
    from vla.heads.base import RunFn
    from vla.model import VLAModel


class DiffusionHead(TokenHead):
    """Masked discrete diffusion over action tokens (Discrete Diffusion VLA)."""

    name = "diffusion"
    families = (
        DecoderFamily("diffusion", "diffusion", "masked-diffusion head, T denoising steps",
                      steps=8, steps_symbol="T", checkpoint="diffusion", stochastic=True,
                      plot_family="diffusion"),
    )

    def denoise_logits(self, model: VLAModel, tokens: torch.Tensor, cache: DynamicCache
                       ) -> torch.Tensor:
        """Tokens (B, L) with ``[MASK]`` ids -> logits (B, L, n_bins + 1).

        The last column is the ``[MASK]`` id's logit, fixed at ``-inf`` (never predicted);
        it is there because the decoder requires ``mask_id`` inside the vocabulary.
        """
        cache = expand_cache(cache, tokens.shape[0])
        h = model.backbone.run(self.tok_embed(tokens), cache, append=False, causal=False)
        return F.pad(self.lm_head(h), (0, 1), value=float("-inf"))

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked cross-entropy on a cosine-scheduled random mask."""
        cfg = self.config
        targets = model.tokenizer.encode(actions)  # (B, H*D)
        masked = cosine_mask(actions.shape[0], targets.shape[1], generator).to(targets.device)
        valid = valid_tokens(valid_steps, cfg.action_dim) & masked
        inputs = torch.where(masked, torch.full_like(targets, cfg.mask_id), targets)
        h = run(self.tok_embed(inputs), False)
        return self.token_loss(h, targets, valid)

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """:func:`decoding.masked_diffusion` (``steps`` 8 by default).

        With ``prefix=`` (an :class:`~vla.heads.base.ActionPrefix`) the committed steps'
        tokens start unmasked and stay (inpainting); the steps fill the other positions.
        """
        import decoding

        kwargs = {"steps": 8, **kwargs}
        prefix = kwargs.pop("prefix", None)
        if prefix is not None:
            kwargs["prefix_tokens"] = prefix.tokens(model)
        res = decoding.masked_diffusion(
            lambda tokens: self.denoise_logits(model, tokens, cache),
            self.config.n_action_tokens, mask_id=self.config.mask_id, batch_size=batch,
            device=model.device, **kwargs)
        return self.to_chunk(model, res.tokens), int(res.nfe), dict(res.stats)


def cosine_mask(batch: int, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """Boolean (B, L) mask: per row ``ceil(cos(pi/2 r) L)`` random positions, r ~ U(0, 1)."""
    r = torch.rand(batch, generator=generator)
    n_mask = torch.ceil(torch.cos(math.pi / 2 * r) * length).clamp(1, length).long()
    scores = torch.rand(batch, length, generator=generator)
    rank = scores.argsort(dim=1).argsort(dim=1)
    return rank < n_mask[:, None]
