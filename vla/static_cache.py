"""A preallocated KV cache: fixed shapes, so the backbone's passes can be captured in CUDA graphs.

Usage: ``cache = StaticCache.for_model(config, batch=8, device="cuda")``; ``backbone.run(x, cache,
append=True, causal=False)`` writes the prefix; decoders drive it like a ``DynamicCache``.

Keys and values live in one (B, heads, capacity, head_dim) buffer per layer. A pass over ``t``
new tokens writes their K/V at positions ``start .. start + t`` (``start`` is a one-element
device tensor, so the position is data of a captured graph, not a constant of it) and attends
over the whole buffer through a mask that hides every key at or after ``start + t`` (and, for
causal passes, the later new tokens). A hidden key weighs exactly zero, so the result equals
attending over ``[cached | new]`` up to the order of floating-point sums.

The cache keeps its length twice: :attr:`length` (a Python int, what ``get_seq_length``,
``crop`` and the decoders' bookkeeping read) and :attr:`start` (the device copy the captured
passes read). :meth:`seek` sets both; a pass that appends advances both. It implements the part
of the ``transformers.Cache`` surface that :mod:`decoding.adapter` uses (``get_seq_length``,
``crop``), so :func:`decoding.autoregressive` and :func:`decoding.jacobi` run on it unchanged.
"""

from __future__ import annotations

import torch

from vla.config import VLAConfig


class StaticCache:
    """Preallocated per-layer K/V of ``capacity`` positions (see the module docstring).

    Args:
        n_layers: Backbone layers.
        batch: Rows B.
        n_heads: Attention heads.
        head_dim: Channels per head.
        capacity: Positions held (prefix plus the longest action sequence).
        dtype: Dtype of the K/V (the model's).
        device: Device of the buffers.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (2, batch, n_heads, capacity, head_dim)  # keys and values of a layer together
        self.kv = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.capacity = capacity
        self._pos: torch.Tensor | None = None
        self.length = 0
        self.start = torch.zeros((), dtype=torch.long, device=device)
        self.key_pos = torch.arange(capacity, device=device)
        self.runner = None
        """Replays captured passes (``vla.fast.PassGraphs``); ``None``: run the blocks."""
        self.capturing = False
        """True while a pass is being captured: the backbone runs its blocks itself."""

    @classmethod
    def for_model(cls, config: VLAConfig, batch: int, device: torch.device | str,
                  dtype: torch.dtype = torch.float32) -> StaticCache:
        """A cache for ``config``'s backbone: the prefix plus the longest action sequence."""
        return cls(config.n_layers, batch, config.n_heads, config.d_model // config.n_heads,
                   config.max_positions, dtype, device)

    @property
    def batch_size(self) -> int:
        """Rows B."""
        return self.kv[0].shape[1]

    def get_seq_length(self, layer: int = 0) -> int:
        """Positions held (the ``transformers.Cache`` name)."""
        return self.length

    def seek(self, length: int) -> None:
        """Set the length (both copies) to ``length``."""
        if not 0 <= length <= self.capacity:
            raise ValueError(f"length {length} outside the cache's 0..{self.capacity}")
        self.length = length
        self.start.fill_(length)

    def crop(self, max_length: int) -> None:
        """Shorten the cache (``transformers.DynamicCache.crop``'s two readings).

        A negative ``max_length`` drops that many last positions; otherwise the first
        ``max_length`` positions are kept.
        """
        self.seek(self.length + max_length if max_length < 0 else min(max_length, self.length))

    def check_room(self, t: int) -> None:
        """Raise if ``t`` more positions do not fit after :attr:`length`."""
        if self.length + t > self.capacity:
            raise ValueError(f"{t} new positions after {self.length} exceed the static cache's "
                             f"{self.capacity}")

    def begin_pass(self, t: int, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (t,) of a pass over ``t`` new tokens and its additive (t, capacity) mask.

        New tokens sit at ``start .. start + t``; they may attend to every key before them and,
        unless ``causal``, to all new tokens; hidden keys get ``-inf``. The positions are kept
        for the pass's :meth:`write` calls (one per layer), computed once.
        """
        self._pos = self.start + torch.arange(t, device=self.start.device)
        if causal:
            visible = self.key_pos[None, :] <= self._pos[:, None]
        else:
            visible = (self.key_pos < self.start + t)[None, :].expand(t, -1)
        mask = torch.zeros(visible.shape, dtype=self.kv[0].dtype, device=self.start.device)
        return self._pos, mask.masked_fill_(~visible, float("-inf"))

    def write(self, layer: int, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a pass's keys and values (2, B, heads, t, hd) at its positions (one copy).

        Returns the layer's full key and value buffers (B, heads, capacity, hd).
        """
        if self._pos is None or self._pos.shape[0] != kv.shape[3]:
            raise RuntimeError("write() outside a pass: call begin_pass() first")
        buf = self.kv[layer]
        buf.index_copy_(3, self._pos, kv.to(buf.dtype))
        return buf[0], buf[1]

    def advance(self, t: int) -> None:
        """Move past ``t`` appended positions (a device add, so captured passes advance too)."""
        self.length += t
        self.start.add_(t)
