"""Argument checks shared by the decoders; each raises ``ValueError`` naming the argument."""

from __future__ import annotations

import math

import torch


def check_input_ids(input_ids: object) -> torch.Tensor:
    """Require a non-empty 2-D integer tensor ``[B, T]``."""
    if not isinstance(input_ids, torch.Tensor):
        raise ValueError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be 2-D [batch, seq], got shape {tuple(input_ids.shape)}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or \
            input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.shape[0] < 1 or input_ids.shape[1] < 1:
        raise ValueError(f"input_ids must have at least one row and one token, got shape "
                         f"{tuple(input_ids.shape)}")
    return input_ids.long()


def check_positive_int(value: object, name: str) -> int:
    """Require an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Validate the sampling knobs (temperature 0 means greedy)."""
    if not isinstance(temperature, int | float) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    if top_p is not None and not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def check_eos(eos_token_id: object) -> int | None:
    """Require ``None`` or a non-negative int."""
    if eos_token_id is None:
        return None
    if isinstance(eos_token_id, bool) or not isinstance(eos_token_id, int) or eos_token_id < 0:
        raise ValueError(f"eos_token_id must be None or an int >= 0, got {eos_token_id!r}")
    return eos_token_id


def check_prefix_tokens(prefix_tokens: object, batch: int, max_new_tokens: int
                        ) -> torch.Tensor | None:
    """Require ``None`` or integer ids ``[B, d]`` (or ``[d]``, shared by every row), ``d <= n``.

    Returns:
        ``None`` when there is no prefix (``None`` or ``d = 0``), else a LongTensor ``[B, d]``.
    """
    if prefix_tokens is None:
        return None
    if not isinstance(prefix_tokens, torch.Tensor) or prefix_tokens.dtype.is_floating_point \
            or prefix_tokens.dtype.is_complex or prefix_tokens.dtype == torch.bool:
        raise ValueError("prefix_tokens must be None or an integer tensor [batch, d] or [d]")
    prefix = prefix_tokens.long()
    if prefix.dim() == 1:
        prefix = prefix[None].expand(batch, -1)
    if prefix.dim() != 2 or prefix.shape[0] != batch:
        raise ValueError(f"prefix_tokens must have shape [{batch}, d] or [d], got "
                         f"{tuple(prefix_tokens.shape)}")
    if prefix.shape[1] > max_new_tokens:
        raise ValueError(f"prefix_tokens has {prefix.shape[1]} tokens, more than the "
                         f"{max_new_tokens} to generate")
    if prefix.numel() and int(prefix.min()) < 0:
        raise ValueError("prefix_tokens must hold token ids >= 0")
    return prefix if prefix.shape[1] else None
