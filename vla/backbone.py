"""The transformer backbone: pre-LN blocks whose attention reads and writes a `DynamicCache`.

Three ways to run the same blocks:

* **prefix**: the observation tokens attend to each other bidirectionally and each layer's
  K/V is written into a fresh ``transformers.DynamicCache`` with ``cache.update(k, v, layer)``;
* **causal**: action tokens attend to the cached prefix and causally to each other, the new K/V
  appended to the cache (the AR head's Hugging Face calling convention) or not;
* **bidirectional**: action tokens attend to the prefix and to each other in both directions,
  the cache only read (diffusion, flow and one-pass heads).

Training runs prefix and actions in one pass with :func:`full_mask`, which gives exactly the
same attention pattern as encoding the prefix first and the actions against its cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from vla.config import VLAConfig
from vla.static_cache import StaticCache


class SelfAttention(nn.Module):
    """Multi-head attention over [cached keys | new keys]."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, layer: int, cache: DynamicCache | StaticCache | None, *,
                append: bool, mask: torch.Tensor | None) -> torch.Tensor:
        """Attend ``x`` (B, T, d) to the cache's keys of ``layer`` and to itself.

        Args:
            x: Hidden states of the new tokens.
            layer: Layer index in the cache.
            cache: Prefix cache or ``None`` (no past keys).
            append: Write the new K/V into the cache (``cache.update``) or only read it. A
                :class:`StaticCache` is always written (after its length: scratch space unless
                the pass appends) and read whole through ``mask``.
            mask: Boolean (T, past + T) mask, True = may attend (for a static cache an
                additive float (T, capacity) mask); ``None`` = attend to all.
        """
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv
        if isinstance(cache, StaticCache):
            k, v = cache.write(layer, qkv[1:])
        elif cache is not None and append:
            k, v = cache.update(k, v, layer)
        elif cache is not None and len(cache.layers) > layer and cache.layers[layer].is_initialized:
            past = cache.layers[layer]
            k = torch.cat([past.keys.to(k.dtype), k], dim=2)
            v = torch.cat([past.values.to(v.dtype), v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LN transformer block: attention then a GELU MLP, each with a residual."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, config.mlp_ratio * d), nn.GELU(),
                                 nn.Linear(config.mlp_ratio * d, d), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor, layer: int, cache: DynamicCache | StaticCache | None, *,
                append: bool, mask: torch.Tensor | None) -> torch.Tensor:
        """Apply the block (see :meth:`SelfAttention.forward` for the arguments)."""
        x = x + self.attn(self.ln1(x), layer, cache, append=append, mask=mask)
        return x + self.mlp(self.ln2(x))


class Backbone(nn.Module):
    """Learned absolute positions, ``n_layers`` blocks and a final LayerNorm.

    Args:
        config: Model configuration.
    """

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config
        self.pos = nn.Parameter(torch.randn(config.max_positions, config.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)

    def positions(self, start: int, length: int) -> torch.Tensor:
        """Position embeddings of ``length`` tokens starting at ``start``.

        Raises:
            ValueError: If the span exceeds the learned position table.
        """
        if start + length > self.pos.shape[0]:
            raise ValueError(f"positions {start}..{start + length} exceed the model's "
                             f"{self.pos.shape[0]} (prefix + action tokens)")
        return self.pos[start:start + length]

    def run(self, x: torch.Tensor, cache: DynamicCache | StaticCache | None, *, append: bool,
            causal: bool) -> torch.Tensor:
        """Run new tokens (embeddings without positions) against ``cache``.

        Args:
            x: (B, T, d) token embeddings; positions start at the cache length.
            cache: Prefix cache (read; written too when ``append``) or ``None``; a
                :class:`~vla.static_cache.StaticCache` takes the fixed-shape path.
            append: Whether to keep the new K/V in ``cache`` (extend its length).
            causal: Causal among the new tokens (all cached keys stay visible).

        Returns:
            Final-LayerNorm hidden states (B, T, d).
        """
        if isinstance(cache, StaticCache):
            return self._run_static(x, cache, append=append, causal=causal)
        past = cache.get_seq_length() if cache is not None else 0
        t = x.shape[1]
        h = x + self.positions(past, t).to(x.dtype)
        mask = None
        if causal and t > 1:
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
        for i, block in enumerate(self.blocks):
            h = block(h, i, cache, append=append, mask=mask)
        return self.ln_f(h)

    def _run_static(self, x: torch.Tensor, cache: StaticCache, *, append: bool,
                    causal: bool) -> torch.Tensor:
        """:meth:`run` on a static cache: positions and mask read from its device ``start``."""
        t = x.shape[1]
        cache.check_room(t)
        if cache.runner is not None and not cache.capturing:
            return cache.runner(x, append=append, causal=causal)
        pos, mask = cache.begin_pass(t, causal)
        h = x + self.pos.index_select(0, pos).to(x.dtype)
        for i, block in enumerate(self.blocks):
            h = block(h, i, cache, append=append, mask=mask)
        if append:
            cache.advance(t)
        return self.ln_f(h)

    def encode_prefix(self, prefix: torch.Tensor) -> DynamicCache:
        """Encode the observation tokens (B, P, d) into a new ``DynamicCache`` (bidirectional)."""
        cache = DynamicCache()
        self.run(prefix, cache, append=True, causal=False)
        return cache

    def run_full(self, prefix: torch.Tensor, actions: torch.Tensor, *, causal: bool,
                 with_prefix: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Training pass over [prefix | actions] in one call; returns the action states.

        The mask reproduces the cached path: prefix tokens see only the prefix; action tokens
        see the prefix and (causally or all) the action tokens. ``with_prefix`` also returns
        the prefix tokens' final states: ``(action_states, prefix_states)``.
        """
        p, t = prefix.shape[1], actions.shape[1]
        x = torch.cat([prefix, actions], dim=1)
        h = x + self.positions(0, p + t).to(x.dtype)
        mask = full_mask(p, t, causal=causal, device=x.device)
        for i, block in enumerate(self.blocks):
            h = block(h, i, None, append=False, mask=mask)
        h = self.ln_f(h)
        return (h[:, p:], h[:, :p]) if with_prefix else h[:, p:]


def full_mask(prefix_len: int, n_actions: int, *, causal: bool,
              device: torch.device | None = None) -> torch.Tensor:
    """Boolean (P+T, P+T) attention mask of the one-pass training layout (True = attend)."""
    n = prefix_len + n_actions
    mask = torch.zeros(n, n, dtype=torch.bool, device=device)
    mask[:, :prefix_len] = True
    act = torch.ones(n_actions, n_actions, dtype=torch.bool, device=device)
    mask[prefix_len:, prefix_len:] = act.tril() if causal else act
    return mask
