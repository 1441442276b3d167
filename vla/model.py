"""`VLAModel`: encoders + backbone + one action head, its training loss and its chunk predictor.

Usage: model = VLAModel(preset("cpu", head="ar")); actions, stats = model.predict_chunk(obs)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from vla.backbone import Backbone
from vla.config import VLAConfig
from vla.encoders import ImageEncoder, InstructionCache, LanguageProjector, StateEncoder
from vla.tokenizer import ActionTokenizer, StateNormalizer


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
class CausalLMOutput:
    """What the AR head returns: ``.logits`` (B, T, V) and the cache it extended."""

    logits: torch.Tensor
    cache: DynamicCache | None

    @property
    def past_key_values(self) -> DynamicCache | None:
        """Alias of ``cache`` (the pre-5.2x transformers name)."""
        return self.cache


class ARHead:
    """The AR head in the Hugging Face causal-LM calling convention (what decoders drive).

    ``head(input_ids=[B, T], cache=prefix)`` embeds the tokens at positions ``cache length ..``,
    attends causally (and to the whole cached prefix), appends their K/V to the cache when
    ``use_cache`` and returns logits over the ``n_bins`` action bins. Token ``n_bins`` is BOS.
    """

    def __init__(self, model: VLAModel) -> None:
        self.model = model
        self.config = SimpleNamespace(vocab_size=model.config.n_bins)

    def __call__(self, input_ids: torch.Tensor | None = None, cache: DynamicCache | None = None,
                 past_key_values: DynamicCache | None = None, use_cache: bool = True,
                 attention_mask: torch.Tensor | None = None, **_: Any) -> CausalLMOutput:
        """Run new tokens against the cache (see the class docstring)."""
        if input_ids is None:
            raise ValueError("input_ids is required")
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("attention_mask with padding is not supported by the AR head")
        cache = cache if cache is not None else past_key_values
        if cache is None and use_cache:
            cache = DynamicCache()
        m = self.model
        h = m.backbone.run(m.tok_embed(input_ids), cache, append=use_cache, causal=True)
        return CausalLMOutput(logits=m.lm_head(h), cache=cache if use_cache else None)


class VLAModel(nn.Module):
    """One backbone over [image tokens | language | state | action positions] and one head.

    Args:
        config: Model configuration (``config.head`` picks the head).
        instructions: Instruction-embedding cache; a fresh one (MiniLM on a miss) by default.
    """

    def __init__(self, config: VLAConfig, instructions: InstructionCache | None = None) -> None:
        super().__init__()
        self.config = config
        self.instructions = (instructions if instructions is not None
                             else InstructionCache(n_tokens=config.lang_cache_tokens))
        if self.instructions.n_tokens != config.lang_cache_tokens:
            raise ValueError(f"instructions cache holds n_tokens={self.instructions.n_tokens} "
                             f"entries; config.lang_features={config.lang_features!r} needs "
                             f"n_tokens={config.lang_cache_tokens}")
        self.chosen_early_exit: dict[str, Any] | None = None  # set by distillation's sweep
        d, n_act = config.d_model, config.action_dim
        self.tokenizer = ActionTokenizer(config.action_dim, config.n_bins)
        self.state_norm = StateNormalizer(config.state_dim)
        self.image_enc = ImageEncoder(config)
        self.lang_proj = LanguageProjector(config)
        self.state_enc = StateEncoder(config)
        self.backbone = Backbone(config)
        if config.state_dropout > 0:
            self.state_null = nn.Parameter(torch.zeros(1, 1, d))
        if config.aux_target_weight > 0:
            self.aux_head = nn.Linear(d, 6)
        if config.head in ("ar", "diffusion"):
            self.tok_embed = nn.Embedding(config.n_bins + 1, d)  # + BOS / [MASK]
            self.lm_head = nn.Linear(d, config.n_bins)
        elif config.head == "flow":
            self.act_in = nn.Linear(n_act, d)
            self.time_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.act_out = nn.Linear(d, n_act)
        else:  # oft: learned empty action queries, continuous output
            self.queries = nn.Parameter(torch.randn(config.horizon, d) * 0.02)
            self.act_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.act_out = nn.Linear(d, n_act)
        self.apply(_init_weights)
        self.image_enc.init_film()

    # ----------------------------------------------------------------- observation & prefix
    def set_stats(self, stats: Mapping[str, Mapping[str, Any]],
                  instructions: Sequence[str] | None = None) -> None:
        """Store dataset statistics (reader's ``.stats``) in the model's buffers.

        Args:
            stats: ``{"action": {q01, q99, ...}, "state": {mean, std, ...}}``.
            instructions: The training instructions, for the language standardization
                (``config.lang_norm``); their embeddings come from ``self.instructions``.
        """
        self.tokenizer.set_stats(stats["action"]["q01"], stats["action"]["q99"])
        self.state_norm.set_stats(stats["state"]["mean"], stats["state"]["std"])
        if self.config.lang_norm:
            if not instructions:
                raise ValueError("instructions are required when config.lang_norm is on")
            self.lang_proj.set_stats(self.instructions.embed(sorted(set(instructions))))

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.backbone.pos.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.backbone.pos.dtype

    def prepare(self, obs: Mapping[str, Any]) -> Observation:
        """Turn an ``obs_batch`` dict into an :class:`Observation` on the model's device.

        ``obs`` holds ``image`` uint8 (B, H, W, 3) [, ``wrist_image``], ``state`` (B, S) and
        ``instruction`` (list of B strings); single unbatched observations are accepted.

        Raises:
            ValueError: If a camera key, the state or the instructions are missing or malformed
                (a state with NaN or inf values, an image that is not uint8).
        """
        missing = [k for k in (*self.config.cameras, "state", "instruction") if k not in obs]
        if missing:
            raise ValueError(f"obs_batch is missing keys {missing}")
        instr = obs["instruction"]
        instr = [instr] if isinstance(instr, str) else list(instr)
        state = torch.as_tensor(obs["state"], dtype=torch.float32)
        state = state.unsqueeze(0) if state.dim() == 1 else state
        if state.shape[-1] != self.config.state_dim:
            raise ValueError(f"state has {state.shape[-1]} dims, model expects "
                             f"{self.config.state_dim}")
        if not torch.isfinite(state).all():
            raise ValueError(f"state has non-finite values: {state.tolist()}")
        if len(instr) != state.shape[0]:
            raise ValueError(f"{len(instr)} instructions for a batch of {state.shape[0]}")
        images = []
        for key in self.config.cameras:
            img = torch.as_tensor(obs[key])
            img = img.unsqueeze(0) if img.dim() == 3 else img
            images.append(self.image_enc.preprocess(img.to(self.device)))
        return Observation(images=images, state=state.to(self.device),
                           lang=self.instructions.embed(instr).to(self.device))

    def prefix_tokens(self, obs: Observation) -> torch.Tensor:
        """Observation -> prefix embeddings (B, P, d): [image | language | state]."""
        lang = self.lang_proj(obs.lang.to(self.dtype))
        img = self.image_enc([x.to(self.dtype) for x in obs.images],
                             cond=self.lang_proj.summary(lang, obs.lang))
        state = self.state_enc(self.state_norm(obs.state).to(self.dtype))
        if self.training and self.config.state_dropout > 0:
            drop = torch.rand(state.shape[0], 1, 1, device=state.device) < \
                self.config.state_dropout
            state = torch.where(drop, self.state_null.to(state.dtype), state)
        return torch.cat([img, lang, state], dim=1)

    def encode_prefix(self, obs: Observation) -> DynamicCache:
        """Encode the observation once into a ``DynamicCache`` that every decoder reuses."""
        return self.backbone.encode_prefix(self.prefix_tokens(obs))

    # ----------------------------------------------------------------------------- heads
    @property
    def ar_head(self) -> ARHead:
        """The AR head as a Hugging Face-convention causal LM (``head == "ar"`` only)."""
        self._require("ar")
        return ARHead(self)

    def _require(self, head: str) -> None:
        if self.config.head != head:
            raise ValueError(f"this model has head={self.config.head!r}, not {head!r}")

    def bos_ids(self, batch: int) -> torch.Tensor:
        """The AR head's first input: one BOS id per row, (B, 1)."""
        return torch.full((batch, 1), self.config.bos_id, dtype=torch.long, device=self.device)

    def denoise_logits(self, tokens: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """Diffusion head: tokens (B, L) with ``[MASK]`` ids -> logits (B, L, n_bins + 1).

        The last column is the ``[MASK]`` id's logit, fixed at ``-inf`` (never predicted);
        it is there because the decoder requires ``mask_id`` inside the vocabulary.
        """
        self._require("diffusion")
        cache = _expand_cache(cache, tokens.shape[0])
        h = self.backbone.run(self.tok_embed(tokens), cache, append=False, causal=False)
        logits = self.lm_head(h)
        return F.pad(logits, (0, 1), value=float("-inf"))

    def _time_embed(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=self.dtype, device=self.device).reshape(-1).expand(batch)
        half = self.config.d_model // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=self.device) / half)
        ang = t[:, None] * 1000.0 * freqs.to(self.dtype)[None]
        return self.time_mlp(torch.cat([ang.sin(), ang.cos()], dim=-1))

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor | float, cache: DynamicCache
                 ) -> torch.Tensor:
        """Flow head: normalized noisy chunk (B, H, D) at time t (0 noise, 1 data) -> velocity."""
        self._require("flow")
        b = x_t.shape[0]
        h = self.act_in(x_t.to(self.dtype)) + self._time_embed(t, b)[:, None]
        h = self.backbone.run(h, _expand_cache(cache, b), append=False, causal=False)
        return self.act_out(h)

    def oft_chunk(self, cache: DynamicCache, batch: int) -> torch.Tensor:
        """One-pass head: prefix cache -> normalized chunk (B, H, D)."""
        self._require("oft")
        q = self.queries.unsqueeze(0).expand(batch, -1, -1)
        h = self.backbone.run(q, _expand_cache(cache, batch), append=False, causal=False)
        return self.act_out(h + self.act_mlp(h))

    # ----------------------------------------------------------------------------- loss
    def compute_loss(self, obs: Observation, actions: torch.Tensor,
                     is_pad: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Training loss of the head on a batch (actions (B, H, D) in env units).

        Returns:
            ``(loss, metrics)``; metrics hold floats (``loss``, ``token_acc`` for token heads).
        """
        from vla.losses import head_loss

        return head_loss(self, obs, actions, is_pad, generator)

    # ------------------------------------------------------------------------- inference
    def predict_chunk(self, obs_batch: Mapping[str, Any], decoder: str | None = None,
                      **kwargs: Any):
        """Predict one action chunk per observation (see :func:`vla.predict.predict_chunk`)."""
        from vla.predict import predict_chunk

        return predict_chunk(self, obs_batch, decoder=decoder, **kwargs)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters; the frozen MiniLM is not part of the model."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _expand_cache(cache: DynamicCache, batch: int) -> DynamicCache:
    """A read-only view of a batch-1 prefix cache broadcast to ``batch`` rows."""
    if cache.layers and cache.layers[0].keys is not None and cache.layers[0].keys.shape[0] == 1 \
            and batch > 1:
        out = DynamicCache()
        for i, layer in enumerate(cache.layers):
            out.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(
                batch, -1, -1, -1), i)
        return out
    return cache


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


def collate_observations(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack reader items into an ``obs_batch`` dict for :meth:`VLAModel.prepare`."""
    out: dict[str, Any] = {"instruction": [it["instruction"] for it in items]}
    for key in items[0]:
        if key == "instruction":
            continue
        vals = [torch.as_tensor(it[key]) for it in items]
        out[key] = torch.stack(vals)
    return out
