"""`predict_chunk`: observation batch -> action chunk in env units, with passes and timings.

Usage: actions, stats = model.predict_chunk(obs_batch, decoder="jacobi", early_exit=EarlyExit())

Decoders per head (the first is the default):

* ``ar`` head: ``ar`` (``decoding.autoregressive``), ``jacobi`` (``decoding.jacobi``; kwargs
  ``block_size``, ``early_exit``: an ``EarlyExit`` or ``"auto"``, the setting the distillation
  sweep chose for this checkpoint (``early_exit.json``), else ``EarlyExit()``);
* ``diffusion`` head: ``diffusion`` (``decoding.masked_diffusion``; kwargs ``steps`` (8), ...);
* ``flow`` head: ``flow`` (``decoding.flow_sample``; kwargs ``steps`` (10), ``solver``);
* ``oft`` head: ``oft`` (one bidirectional pass).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from vla.model import VLAModel

DECODERS: dict[str, tuple[str, ...]] = {
    "ar": ("ar", "jacobi"),
    "diffusion": ("diffusion",),
    "flow": ("flow",),
    "oft": ("oft",),
}
"""Decoders each head supports; the first is its default."""


def _decode_normalized(model: VLAModel, obs, cache, decoder: str, kwargs: dict[str, Any]
                       ) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """Run one decoder against the prefix cache; returns (normalized chunk, nfe, stats)."""
    import decoding

    cfg = model.config
    b = obs.batch_size
    n = cfg.n_action_tokens
    if decoder in ("ar", "jacobi"):
        fn = decoding.autoregressive if decoder == "ar" else decoding.jacobi
        if kwargs.get("early_exit") == "auto":  # the setting distillation chose, else default
            chosen = model.chosen_early_exit
            kwargs = {**kwargs, "early_exit": decoding.EarlyExit(**(chosen or {}))}
        res = fn(model.ar_head, model.bos_ids(b), n, cache=cache, **kwargs)
        z = model.tokenizer.bin_centers(res.tokens[:, :n]).unflatten(-1, (cfg.horizon, -1))
        return z, int(res.nfe), dict(res.stats)
    if decoder == "diffusion":
        kwargs = {"steps": 8, **kwargs}
        res = decoding.masked_diffusion(
            lambda tokens: model.denoise_logits(tokens, cache), n, mask_id=cfg.mask_id,
            batch_size=b, device=model.device, **kwargs)
        z = model.tokenizer.bin_centers(res.tokens[:, :n]).unflatten(-1, (cfg.horizon, -1))
        return z, int(res.nfe), dict(res.stats)
    if decoder == "flow":
        kwargs = {"steps": 10, "solver": "euler", **kwargs}
        res = decoding.flow_sample(lambda x, t: model.velocity(x, t, cache),
                                   (b, cfg.horizon, cfg.action_dim), dtype=model.dtype,
                                   device=model.device, **kwargs)
        return res.samples.clamp(-1, 1), int(res.nfe), dict(getattr(res, "stats", {}) or {})
    return model.oft_chunk(cache, b).clamp(-1, 1), 1, {}


@torch.inference_mode()
def predict_chunk(model: VLAModel, obs_batch: Mapping[str, Any], decoder: str | None = None,
                  **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Predict one chunk per observation with the chosen decoder.

    Args:
        model: The VLA model (its head decides which decoders apply).
        obs_batch: ``image`` uint8 (B, H, W, 3) [, ``wrist_image``], ``state`` (B, S),
            ``instruction`` list of B strings (unbatched single observations are accepted).
        decoder: Decoder name (see the module docstring); ``None`` = the head's default.
        **kwargs: Passed to the decoder (e.g. ``early_exit=``, ``steps=``).

    Returns:
        ``(actions, stats)``: actions float32 (B, H, D) in env units; stats with ``nfe``
        (forward passes after the prefix), ``prefix_ms``, ``decode_ms``, ``total_ms``,
        ``decoder`` and the decoder's own statistics.

    Raises:
        ValueError: If the decoder does not apply to the model's head.
    """
    head = model.config.head
    decoder = decoder or DECODERS[head][0]
    if decoder not in DECODERS[head]:
        raise ValueError(f"decoder {decoder!r} does not apply to head {head!r}; "
                         f"choose from {DECODERS[head]}")
    t0 = time.perf_counter()
    obs = model.prepare(obs_batch)
    t1 = time.perf_counter()
    cache = model.encode_prefix(obs)
    t2 = time.perf_counter()
    z, nfe, dstats = _decode_normalized(model, obs, cache, decoder, kwargs)
    t3 = time.perf_counter()
    actions = model.tokenizer.unnormalize(z.float()).cpu().numpy().astype(np.float32)
    t4 = time.perf_counter()
    stats = {"decoder": decoder, "nfe": nfe, "prep_ms": 1e3 * (t1 - t0),
             "prefix_ms": 1e3 * (t2 - t1), "decode_ms": 1e3 * (t3 - t2),
             "total_ms": 1e3 * (t4 - t0), **{f"decoder_{k}": v for k, v in dstats.items()}}
    return actions, stats
