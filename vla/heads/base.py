"""The action-head contract: one head owns its parameters, its training loss and its decoders.

Usage: ``head = make_head(config)``; ``loss, metrics = head.loss(model, actions, valid, run, g)``;
``z, nfe, stats = head.decode(model, cache, batch, "jacobi", early_exit="auto")``

A head sits on the shared backbone: the model encodes the observation prefix, the head embeds
its action positions, runs them through the backbone (``run`` in training, the prefix cache at
inference) and reads its output. Everything a head needs from the model is passed in (the
backbone, the action tokenizer, dtype and device), so a head never imports the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

if TYPE_CHECKING:
    from collections.abc import Callable

    from vla.config import VLAConfig
    from vla.model import VLAModel
    from vla.static_cache import StaticCache

    RunFn = Callable[[torch.Tensor, bool], torch.Tensor]
    """``run(x, causal)``: the backbone over [prefix | x] -> final states of x (B, T, d)."""


@dataclass(frozen=True)
class DecoderFamily:
    """One family of decoder specs a head offers (the ``jacobi`` in ``jacobi+ee``).

    :mod:`vla.decoders` parses spec strings against the families of the registered heads.

    Attributes:
        name: The spec's leading word (``ar``, ``jacobi``, ``flow``, ...), unique over heads.
        decoder: Name of the head's decode routine the family runs (see
            :meth:`ActionHead.decode`).
        doc: One line for help texts and the spec table.
        early_exit: Whether the ``+ee`` suffix (relaxed early exit) applies.
        steps: Default step count if the family takes ``@N``; ``None`` if it takes none.
        steps_symbol: The letter help texts use for the step count (``diffusion@T``).
        solvers: Valid ``:solver`` suffixes, the default first; empty if none.
        checkpoint: Folder name of the model inside a checkpoint set (``ar``, ``cjacobi``, ...).
        stochastic: Whether decoding draws noise (policies re-seed a generator per episode).
        plot_family: Group name in plots and tables (decoders of one family share a colour).
    """

    name: str
    decoder: str
    doc: str
    early_exit: bool = False
    steps: int | None = None
    steps_symbol: str = "N"
    solvers: tuple[str, ...] = ()
    checkpoint: str = ""
    stochastic: bool = False
    plot_family: str = ""


@dataclass(frozen=True)
class ActionPrefix:
    """The actions a new chunk must continue: real-time chunking (RTC).

    While the new chunk decodes, the robot executes the previous one; its actions for the new
    chunk's first steps are known. ``actions[:, j]`` is the previous plan's action at step
    ``j`` of the new chunk; the first ``frozen`` of them are committed (they execute before the
    new chunk arrives). What each head does with them is documented on its ``decode``; heads
    without a frozen-prefix mode reject it.

    Attributes:
        actions: Normalized actions (B, m, D) in [-1, 1], ``m <= H``.
        frozen: Committed steps ``d``, ``0 <= d <= m`` and ``d < H``.
    """

    actions: torch.Tensor
    frozen: int

    def tokens(self, model: VLAModel) -> torch.Tensor | None:
        """The committed steps as action-bin tokens (B, d * D); ``None`` when ``d = 0``."""
        if self.frozen == 0:
            return None
        return model.tokenizer.bin_ids(self.actions[:, :self.frozen]).flatten(1)


class ActionHead(nn.Module):
    """Base class of the action heads (one subclass per file in :mod:`vla.heads`).

    Subclasses set :attr:`name` and :attr:`families` and implement :meth:`loss` and
    :meth:`decode`. Parameters are created in ``__init__`` (the model initializes every
    ``nn.Linear`` / ``nn.Embedding`` afterwards).

    Args:
        config: The model configuration (``d_model``, ``horizon``, ``action_dim``, ...).
    """

    name: ClassVar[str]
    families: ClassVar[tuple[DecoderFamily, ...]]

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def decoders(self) -> tuple[str, ...]:
        """The decode routines this head runs; the first is its default."""
        return tuple(dict.fromkeys(f.decoder for f in self.families))

    def loss(self, model: VLAModel, actions: torch.Tensor, valid_steps: torch.Tensor,
             run: RunFn, generator: torch.Generator | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on one batch.

        Args:
            model: The model the head belongs to (tokenizer, dtype, device, ``training``).
            actions: Demo chunks (B, H, D) in env units, on the model's device.
            valid_steps: Bool (B, H); padded steps never count in the loss.
            run: The backbone over [prefix | action inputs] (see ``RunFn``).
            generator: Randomness of the loss (masks, noise, times).

        Returns:
            ``(loss, metrics)``; metrics hold floats, ``loss`` among them.
        """
        raise NotImplementedError

    def decode(self, model: VLAModel, cache: DynamicCache, batch: int, decoder: str,
               **kwargs: Any) -> tuple[torch.Tensor, int, dict[str, Any]]:
        """Decode one normalized chunk per row against the encoded prefix.

        Args:
            model: The model the head belongs to.
            cache: The observation prefix, encoded once (never modified).
            batch: Rows B.
            decoder: One of :attr:`decoders`.
            **kwargs: The decoder's settings (``steps=``, ``early_exit=``, ``generator=``...)
                and, for real-time chunking, ``prefix=`` (an :class:`ActionPrefix`).

        Returns:
            ``(chunk, nfe, stats)``: chunk (B, H, D) in [-1, 1], forward passes after the
            prefix, and the decoder's own statistics.
        """
        raise NotImplementedError


class TokenHead(ActionHead):
    """A head over the H x D action-bin tokens (``n_bins`` ids plus one special id)."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__(config)
        self.tok_embed = nn.Embedding(config.n_bins + 1, config.d_model)  # + BOS / [MASK]
        self.lm_head = nn.Linear(config.d_model, config.n_bins)

    def token_loss(self, h: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy and token accuracy of the states ``h`` on the ``valid`` targets."""
        logits = self.lm_head(h)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        w = valid.flatten().float()
        loss = (ce * w).sum() / w.sum().clamp_min(1.0)
        acc = ((logits.argmax(-1) == targets).float().flatten() * w).sum() / w.sum().clamp_min(1)
        return loss, {"loss": float(loss.detach()), "token_acc": float(acc)}

    def to_chunk(self, model: VLAModel, tokens: torch.Tensor, check: bool = True
                 ) -> torch.Tensor:
        """Decoded tokens (B, >= H*D) -> normalized chunk (B, H, D) at the bin centres."""
        n = self.config.n_action_tokens
        return model.tokenizer.bin_centers(tokens[:, :n], check=check).unflatten(
            -1, (self.config.horizon, -1))


def valid_tokens(valid_steps: torch.Tensor, action_dim: int) -> torch.Tensor:
    """Per-step validity (B, H) -> per-token validity (B, H * D)."""
    return valid_steps.repeat_interleave(action_dim, dim=-1)


def expand_cache(cache: DynamicCache | StaticCache, batch: int) -> DynamicCache | StaticCache:
    """A read-only view of a batch-1 prefix cache broadcast to ``batch`` rows.

    A static cache, which holds its batch already, is returned as is.
    """
    if not isinstance(cache, DynamicCache):
        return cache
    if cache.layers and cache.layers[0].keys is not None and cache.layers[0].keys.shape[0] == 1 \
            and batch > 1:
        out = DynamicCache()
        for i, layer in enumerate(cache.layers):
            out.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(
                batch, -1, -1, -1), i)
        return out
    return cache
