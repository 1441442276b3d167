"""`VLAModel`: encoders + backbone + one action head, its training loss and its chunk predictor.

Usage: model = VLAModel(preset("cpu", head="ar")); actions, stats = model.predict_chunk(obs)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import DynamicCache

from decoding.threads import DEFAULT_CPU_THREADS, cpu_threads
from vla.backbone import Backbone
from vla.config import VLAConfig
from vla.encoders import ImageEncoder, InstructionCache, LanguageProjector, StateEncoder
from vla.fast import FastPath, eager_reason
from vla.heads import ActionPrefix, make_head
from vla.observation import Observation, RawObservation
from vla.tokenizer import ActionTokenizer, StateNormalizer


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
        self.cpu_threads: int | None = DEFAULT_CPU_THREADS
        """Torch threads :meth:`predict_chunk` uses on CPU (scoped to the call; ``None``: leave
        torch's setting). One thread is fastest for this model size on small CPUs."""
        d = config.d_model
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
        self.head = make_head(config)
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
        raw = self.raw_inputs(obs)
        return Observation(
            images=[self.image_enc.preprocess(img.to(self.device)) for img in raw.images],
            state=raw.state.to(self.device), lang=raw.lang.to(self.device))

    def raw_inputs(self, obs: Mapping[str, Any]) -> RawObservation:
        """Check an ``obs_batch`` (see :meth:`prepare`) and collect its tensors on the host.

        Returns uint8 (B, H, W, 3) images, the float32 state and the language features: what
        the fast path copies into its static buffers.
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
        self.state_norm.check_range(state)
        if len(instr) != state.shape[0]:
            raise ValueError(f"{len(instr)} instructions for a batch of {state.shape[0]}")
        images = []
        for key in self.config.cameras:
            img = torch.as_tensor(obs[key])
            img = img.unsqueeze(0) if img.dim() == 3 else img
            if img.dim() != 4 or img.shape[-1] != 3 or img.dtype != torch.uint8:
                self.image_enc.preprocess(img)  # raises the error that names the problem
            images.append(img)
        return RawObservation(images=images, state=state, lang=self.instructions.embed(instr))

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

    # ----------------------------------------------------------------------------- loss
    def compute_loss(self, obs: Observation, actions: torch.Tensor,
                     is_pad: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Training loss of the head on a batch (actions (B, H, D) in env units).

        Each head's loss is one pass over [prefix | action positions] (see the head's
        module). Padded action steps (``action_is_pad``) never count. With
        ``config.aux_target_weight`` the loss adds ``weight x`` the MSE of an auxiliary
        regression, from the mean of the prefix's final states, of the demo's grasp and release
        points (normalized like the state; items whose episode never grasps are left out).

        Returns:
            ``(loss, metrics)``; metrics hold floats (``loss``, ``token_acc`` for token heads).
        """
        cfg = self.config
        actions = actions.to(self.device)
        if actions.shape[1:] != (cfg.horizon, cfg.action_dim):
            raise ValueError(f"actions must be (B, {cfg.horizon}, {cfg.action_dim}), got "
                             f"{tuple(actions.shape)}")
        prefix = self.prefix_tokens(obs)
        aux_on = cfg.aux_target_weight > 0 and obs.aux is not None
        states: dict[str, torch.Tensor] = {}

        def run(x: torch.Tensor, causal: bool) -> torch.Tensor:
            if not aux_on:
                return self.backbone.run_full(prefix, x, causal=causal)
            h, states["prefix"] = self.backbone.run_full(prefix, x, causal=causal,
                                                         with_prefix=True)
            return h

        valid_steps = (~is_pad.bool()).to(self.device) if is_pad is not None else torch.ones(
            actions.shape[0], cfg.horizon, dtype=torch.bool, device=self.device)
        loss, metrics = self.head.loss(self, actions, valid_steps, run, generator)
        if aux_on:
            aux = self._aux_loss(states["prefix"], obs.aux.to(self.device))
            metrics["aux"] = float(aux.detach())
            loss = loss + cfg.aux_target_weight * aux
        return loss, metrics

    def _aux_loss(self, prefix_states: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """MSE of the grasp/release point regression on the items whose target is valid."""
        xyz = slice(0, 3)
        mean, std = self.state_norm.mean[xyz].to(aux.dtype), self.state_norm.std[xyz].to(aux.dtype)
        target = torch.cat([(aux[:, 0:3] - mean) / std, (aux[:, 3:6] - mean) / std], dim=-1)
        pred = self.aux_head(prefix_states.mean(1)).float()
        w = aux[:, 6:7].float()
        return ((pred - target.float()).pow(2) * w).sum() / (w.sum() * 6).clamp_min(1.0)

    # ------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def predict_chunk(self, obs_batch: Mapping[str, Any], decoder: str | None = None, *,
                      prefix_actions: Any = None, frozen_steps: int | None = None,
                      fast: bool = False, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Predict one action chunk per observation with one of the head's decoders.

        Args:
            obs_batch: ``image`` uint8 (B, H, W, 3) [, ``wrist_image``], ``state`` (B, S),
                ``instruction`` list of B strings (unbatched single observations are accepted).
            decoder: One of ``self.head.decoders`` (``ar``/``jacobi`` for the AR head,
                ``diffusion``, ``flow``, ``oft``); ``None`` = the head's default. Decoder
                *specs* such as ``cjacobi+ee`` are parsed by :mod:`vla.decoders`.
            prefix_actions: Real-time chunking: the previous chunk's actions (B, m, D) or
                (m, D) in env units, time-aligned with the new chunk (row ``j`` = step ``j``),
                ``m <= H``; ``None`` (default) decodes as without it.
            frozen_steps: How many of them are committed (``0 <= d <= m``, ``d < H``; default
                ``m``). Token decoders reproduce their bin centres exactly and continue
                them, flow is guided towards them (RTC inpainting), OFT replaces its first
                ``d`` steps by them (see each head's ``decode``).
            fast: Run the fast path (:mod:`vla.fast`): a static KV cache, and on CUDA captured
                graphs (prefix to actions in one graph for ``oft``, ``flow`` and plain greedy
                ``ar``; one graph per pass shape for the others). Same answers as the eager
                path (greedy tokens identical; continuous outputs to float rounding);
                ``stats["path"]`` says which path ran.
            **kwargs: Passed to the decoder (e.g. ``early_exit=``, ``steps=``, ``solver=``,
                ``generator=``).

        On CPU the call runs with :attr:`cpu_threads` torch threads (1 by default), restored
        afterwards.

        Returns:
            ``(actions, stats)``: actions float32 (B, H, D) in env units; stats with ``nfe``
            (forward passes after the prefix), ``prep_ms``, ``prefix_ms`` (``None`` on the fast
            path, where the prefix runs in the decode's graphs), ``decode_ms``, ``total_ms``
            (end to end), ``path``, ``decoder``, ``frozen_steps`` (with a prefix) and the
            decoder's own statistics (``decoder_*``). ``nfe`` never counts frozen steps.

        Raises:
            ValueError: If the decoder does not apply to the model's head, or the observation
                is malformed.
        """
        decoder = decoder or self.head.decoders[0]
        if decoder not in self.head.decoders:
            raise ValueError(f"decoder {decoder!r} does not apply to head {self.config.head!r}; "
                             f"choose from {self.head.decoders}")
        if prefix_actions is not None:
            kwargs["prefix"] = self.action_prefix(prefix_actions, frozen_steps)
        elif frozen_steps is not None:
            raise ValueError("frozen_steps needs prefix_actions")
        threads = self.cpu_threads if self.device.type == "cpu" else None
        with cpu_threads(threads):
            if fast and eager_reason(decoder, kwargs) is None:
                return self._predict_chunk_fast(obs_batch, decoder, kwargs)
            actions, stats = self._predict_chunk(obs_batch, decoder, kwargs)
            return actions, {**stats, "path": "eager"}

    def action_prefix(self, actions: Any, frozen: int | None = None) -> ActionPrefix:
        """Check and normalize real-time-chunking actions (see :meth:`predict_chunk`).

        Raises:
            ValueError: If the actions are not finite (B, m, D) / (m, D) with ``m <= H``, or
                ``frozen`` is not an int with ``0 <= frozen <= m`` and ``frozen < H``.
        """
        cfg = self.config
        a = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        a = a.unsqueeze(0) if a.dim() == 2 else a
        if a.dim() != 3 or a.shape[-1] != cfg.action_dim or not 1 <= a.shape[1] <= cfg.horizon:
            raise ValueError(f"prefix_actions must be (B, m, {cfg.action_dim}) or "
                             f"(m, {cfg.action_dim}) with 1 <= m <= H={cfg.horizon}, got "
                             f"shape {tuple(a.shape)}")
        if not bool(torch.isfinite(a).all()):
            raise ValueError("prefix_actions has non-finite values")
        m = a.shape[1]
        frozen = m if frozen is None else frozen
        if isinstance(frozen, bool) or not isinstance(frozen, int | np.integer) or \
                not 0 <= frozen <= min(m, cfg.horizon - 1):
            raise ValueError(f"frozen_steps must be an int in [0, min(m={m}, H-1="
                             f"{cfg.horizon - 1})], got {frozen!r}")
        return ActionPrefix(self.tokenizer.normalize(a.to(self.device)), int(frozen))

    def _predict_chunk(self, obs_batch: Mapping[str, Any], decoder: str,
                       kwargs: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        obs = self.prepare(obs_batch)
        t1 = time.perf_counter()
        cache = self.encode_prefix(obs)
        t2 = time.perf_counter()
        prefix = _rows_of_prefix(kwargs, obs.batch_size)
        z, nfe, dstats = self.head.decode(self, cache, obs.batch_size, decoder, **kwargs)
        t3 = time.perf_counter()
        actions = self.tokenizer.unnormalize(z.float()).cpu().numpy().astype(np.float32)
        t4 = time.perf_counter()
        return actions, {"decoder": decoder, "nfe": nfe, "prep_ms": 1e3 * (t1 - t0),
                         "prefix_ms": 1e3 * (t2 - t1), "decode_ms": 1e3 * (t3 - t2),
                         "total_ms": 1e3 * (t4 - t0),
                         **({"frozen_steps": prefix.frozen} if prefix is not None else {}),
                         **{f"decoder_{k}": v for k, v in dstats.items()}}

    def _predict_chunk_fast(self, obs_batch: Mapping[str, Any], decoder: str,
                            kwargs: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        raw = self.raw_inputs(obs_batch)
        prefix = _rows_of_prefix(kwargs, raw.batch_size)
        t1 = time.perf_counter()
        if getattr(self, "_fast", None) is None:
            self._fast = FastPath(self)
        out, nfe, dstats, info = self._fast.decode(raw, decoder, kwargs)
        actions = out.cpu().numpy().astype(np.float32)
        t2 = time.perf_counter()
        return actions, {"decoder": decoder, "nfe": nfe, "prep_ms": 1e3 * (t1 - t0),
                         "prefix_ms": None, "decode_ms": 1e3 * (t2 - t1),
                         "total_ms": 1e3 * (t2 - t0), **info,
                         **({"frozen_steps": prefix.frozen} if prefix is not None else {}),
                         **{f"decoder_{k}": v for k, v in dstats.items()}}

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters; the frozen MiniLM is not part of the model."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _rows_of_prefix(kwargs: dict[str, Any], batch: int) -> ActionPrefix | None:
    """Broadcast ``kwargs["prefix"]`` (if any) to ``batch`` rows in place; returns it.

    Raises:
        ValueError: If the prefix has neither 1 nor ``batch`` rows.
    """
    prefix = kwargs.get("prefix")
    if prefix is None:
        return None
    if prefix.actions.shape[0] not in (1, batch):
        raise ValueError(f"prefix_actions has {prefix.actions.shape[0]} rows for a batch of "
                         f"{batch}")
    kwargs["prefix"] = ActionPrefix(prefix.actions.expand(batch, -1, -1), prefix.frozen)
    return prefix


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
