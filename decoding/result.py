"""The result every decoder returns, and the EOS bookkeeping shared by the token decoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class DecodeResult:
    """What a decoder produced and what it cost.

    Attributes:
        tokens: New tokens, LongTensor ``[B, N]``; positions after a row's first EOS hold the
            EOS id (padding). ``None`` for ``flow_sample``.
        lengths: LongTensor ``[B]``: tokens up to and including the first EOS of each row
            (``N`` for a row without EOS). ``None`` for ``flow_sample``.
        nfe: Every model (denoiser, velocity) call the decoder made. Encoding a pre-filled
            prefix cache happens outside the decoder and is not counted.
        stats: Decoder-specific counters, e.g. ``iters_per_block``, ``accepted_per_iter``,
            ``exit_rule_counts`` (Jacobi) or ``committed_per_step`` (masked diffusion).
        samples: Float samples of ``flow_sample``; ``None`` for the token decoders.
    """

    tokens: torch.Tensor | None
    lengths: torch.Tensor | None
    nfe: int
    stats: dict[str, Any] = field(default_factory=dict)
    samples: torch.Tensor | None = None


def pad_after_eos(tokens: torch.Tensor, eos_token_id: int | None) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """Pad every row after its first EOS with the EOS id and measure the lengths.

    Args:
        tokens: LongTensor ``[B, N]`` of generated tokens.
        eos_token_id: The EOS id, or ``None`` (no row ends early).

    Returns:
        ``(padded_tokens, lengths)``; lengths count the EOS itself.
    """
    batch, n = tokens.shape
    if eos_token_id is None:
        return tokens, torch.full((batch,), n, dtype=torch.long, device=tokens.device)
    is_eos = tokens == eos_token_id
    has_eos = is_eos.any(dim=1)
    first = torch.where(has_eos, is_eos.float().argmax(dim=1), torch.full_like(has_eos, n,
                                                                               dtype=torch.long))
    lengths = torch.where(has_eos, first + 1, first)
    after = torch.arange(n, device=tokens.device)[None, :] >= lengths[:, None]
    return tokens.masked_fill(after, eos_token_id), lengths
