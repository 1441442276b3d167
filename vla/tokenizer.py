"""Normalization of actions and states, and the 256-bin `ActionTokenizer` (OpenVLA)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

_EPS = 1e-6


def _as_tensor(x: np.ndarray | torch.Tensor | list[float], name: str, dim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x,
                        dtype=torch.float32).flatten()
    if t.numel() != dim:
        raise ValueError(f"{name} has {t.numel()} entries, expected {dim}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has non-finite entries")
    return t


class ActionTokenizer(nn.Module):
    """Per-dimension q01/q99 normalization to [-1, 1] and uniform binning into tokens.

    ``normalize`` maps env-unit actions to [-1, 1] (clipped), ``encode`` bins them into
    ``n_bins`` uniform bins (ids ``0..n_bins-1``), ``decode`` returns bin centres in env
    units. The round-trip error is at most half a bin (``1 / n_bins``) in normalized units.
    The statistics are buffers, so they travel inside the model's checkpoint.

    Args:
        action_dim: Action dimensions D.
        n_bins: Uniform bins on [-1, 1].
    """

    def __init__(self, action_dim: int, n_bins: int = 256) -> None:
        super().__init__()
        if action_dim <= 0:
            raise ValueError(f"action_dim must be positive, got {action_dim}")
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.action_dim = action_dim
        self.n_bins = n_bins
        self.register_buffer("q01", -torch.ones(action_dim))
        self.register_buffer("q99", torch.ones(action_dim))

    def set_stats(self, q01: np.ndarray | torch.Tensor, q99: np.ndarray | torch.Tensor) -> None:
        """Set the 1st and 99th percentiles of each action dimension (env units)."""
        lo = _as_tensor(q01, "q01", self.action_dim)
        hi = _as_tensor(q99, "q99", self.action_dim)
        if (hi < lo).any():
            raise ValueError("q99 must be >= q01 in every action dimension")
        self.q01.copy_(lo)
        self.q99.copy_(hi)

    def _scale(self) -> torch.Tensor:
        return (self.q99 - self.q01).clamp_min(_EPS)

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Env units -> [-1, 1], clipped (a constant dimension maps to 0)."""
        a = actions.to(self.q01.dtype)
        z = 2.0 * (a - self.q01) / self._scale() - 1.0
        z = torch.where(self.q99 - self.q01 > _EPS, z, torch.zeros_like(z))
        return z.clamp(-1.0, 1.0)

    def unnormalize(self, z: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> env units."""
        z = z.to(self.q01.dtype).clamp(-1.0, 1.0)
        return (z + 1.0) * 0.5 * (self.q99 - self.q01) + self.q01

    def bin_ids(self, z: torch.Tensor) -> torch.Tensor:
        """Normalized values in [-1, 1] -> bin ids (LongTensor, same shape)."""
        idx = torch.floor((z.clamp(-1.0, 1.0) + 1.0) * 0.5 * self.n_bins).long()
        return idx.clamp(0, self.n_bins - 1)

    def bin_centers(self, ids: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Bin ids -> bin centres in normalized units.

        ``check`` refuses ids out of range: a host sync, which a captured CUDA graph cannot make.
        """
        if check and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n_bins):
            raise ValueError(f"token ids must lie in [0, {self.n_bins}), got "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        return -1.0 + (ids.to(self.q01.dtype) + 0.5) * (2.0 / self.n_bins)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Chunks (..., H, D) in env units -> tokens (..., H * D), time-major."""
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions last dim is {actions.shape[-1]}, expected "
                             f"{self.action_dim}")
        ids = self.bin_ids(self.normalize(actions))
        return ids.flatten(-2)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., H * D) -> chunks (..., H, D) in env units (bin centres)."""
        if tokens.shape[-1] % self.action_dim:
            raise ValueError(f"token length {tokens.shape[-1]} is not a multiple of "
                             f"action_dim={self.action_dim}")
        z = self.bin_centers(tokens)
        return self.unnormalize(z.unflatten(-1, (-1, self.action_dim)))


MAX_STATE_DEVIATIONS = 1e6
"""How far (in training standard deviations) a state may lie from the training mean."""


class StateNormalizer(nn.Module):
    """Mean/std normalization of the proprioceptive state, statistics kept as buffers.

    Args:
        state_dim: State dimensions S.
    """

    def __init__(self, state_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))

    def set_stats(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Set per-dimension mean and standard deviation."""
        n = self.mean.numel()
        self.mean.copy_(_as_tensor(mean, "state mean", n))
        self.std.copy_(_as_tensor(std, "state std", n).clamp_min(1e-3))

    def check_range(self, state: torch.Tensor) -> None:
        """Refuse a finite state too far from the training data for the network's arithmetic.

        A reading more than ``MAX_STATE_DEVIATIONS`` standard deviations from the training mean
        (wrong units, a corrupt sensor, 3e38) would overflow float32 inside the network and come
        out as NaN actions; it is the caller's input that is wrong, so it is refused up front.

        Raises:
            ValueError: Naming the first such dimension, its value and its distance.
        """
        mean = self.mean.detach().to("cpu", torch.float64)
        std = self.std.detach().to("cpu", torch.float64)
        z = ((state.detach().to("cpu", torch.float64) - mean) / std).abs()
        if bool((z > MAX_STATE_DEVIATIONS).any()):
            row, dim = (int(i) for i in torch.nonzero(z > MAX_STATE_DEVIATIONS)[0])
            raise ValueError(
                f"state[{dim}] = {float(state[row, dim]):.6g} is {float(z[row, dim]):.3g} "
                f"standard deviations from the training mean {float(mean[dim]):.6g} (at most "
                f"{MAX_STATE_DEVIATIONS:.0e}): wrong units or a corrupt reading?")

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Normalize a state batch (B, S)."""
        return (state.to(self.mean.dtype) - self.mean) / self.std


def stats_to_json(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    """Dataset statistics (numpy arrays) as plain JSON lists."""
    return {k: {n: np.asarray(v).tolist() for n, v in d.items()} for k, d in stats.items()}
