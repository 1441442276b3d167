"""What the model reads from an observation batch: raw host inputs and their prepared form.

Usage: ``raw = model.raw_inputs(obs_batch)`` (checked, on the host); ``obs = model.prepare(
obs_batch)`` (on the model's device, images preprocessed)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Observation:
    """An observation batch prepared for the model (see :meth:`VLAModel.prepare`).

    Attributes:
        images: One float (B, 3, s, s) tensor per camera of the config.
        state: Raw state (B, S) in env units (normalized inside the model).
        lang: MiniLM features, (B, 384) pooled or (B, L, 384) per token.
        aux: Training only: (B, 7) auxiliary targets (``vla.data.grasp_release_targets``).
    """

    images: list[torch.Tensor]
    state: torch.Tensor
    lang: torch.Tensor
    aux: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        """Batch size B."""
        return self.state.shape[0]


@dataclass
class RawObservation:
    """Checked model inputs before the device: uint8 images, state, language features (CPU)."""

    images: list[torch.Tensor]
    state: torch.Tensor
    lang: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Rows B."""
        return self.state.shape[0]
