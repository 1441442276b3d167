"""The VLA behind the policy contract: one checkpoint, one decoder spec.

Usage: ``VLAPolicy("scratch/ckpt/ar", "jacobi+ee").infer(obs)["actions"]`` -> (H, D)

``checkpoint`` is either one model folder (``config.json`` + ``model.safetensors``, as written
by ``robodecode train``) or a *checkpoint set*: a folder holding one model folder per head,
named ``ar``, ``diffusion``, ``flow``, ``oft``, plus ``cjacobi`` for the consistency-distilled
AR head. With a set, the spec picks the folder (``cjacobi+ee`` -> ``<set>/cjacobi``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import Policy
from vla.decoders import DecoderSpec, parse_decoder_spec

CONFIG_FILE = "config.json"


def resolve_checkpoint(checkpoint: str | Path, decoder: str | DecoderSpec) -> Path:
    """Find the model folder that serves ``decoder`` in ``checkpoint``.

    Raises:
        ValueError: One line naming what exists, if no suitable folder is there.
    """
    spec = parse_decoder_spec(decoder)
    root = Path(checkpoint)
    if not root.is_dir():
        raise ValueError(f"checkpoint {str(root)!r} is not a folder; pass a model folder or a "
                         "checkpoint set (ar/, diffusion/, flow/, oft/, cjacobi/)")
    if (root / CONFIG_FILE).is_file():
        return root
    folder = root / spec.checkpoint
    if (folder / CONFIG_FILE).is_file():
        return folder
    found = sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
    raise ValueError(f"checkpoint {str(root)!r} has no {spec.checkpoint}/ model for decoder "
                     f"{str(spec)!r}; model folders found: {found or 'none'}")


def check_checkpoint(checkpoint: str | Path, decoder: str | DecoderSpec) -> Path:
    """Resolve the model folder for ``decoder`` and check its config holds the right head.

    Reads only ``config.json`` (no weights), so the CLI can reject bad input before it starts
    workers.

    Raises:
        ValueError: If the spec, the folder or its config is invalid, or the head differs.
    """
    from vla.checkpoint import load_config

    spec = parse_decoder_spec(decoder)
    path = resolve_checkpoint(checkpoint, spec)
    head = load_config(path).head
    if head != spec.head:
        raise ValueError(f"decoder {str(spec)!r} needs the {spec.head} head, but "
                         f"{str(path)!r} holds the {head} head")
    return path


def rtc_kwargs(obs: Any) -> dict[str, Any]:
    """``predict_chunk``'s real-time-chunking arguments from an observation's optional keys.

    Raises:
        ValueError: If ``frozen_steps`` comes without ``prev_actions`` or is not an int.
    """
    if not isinstance(obs, dict) or obs.get("prev_actions") is None:
        if isinstance(obs, dict) and obs.get("frozen_steps") is not None:
            raise ValueError("frozen_steps needs prev_actions")
        return {}
    prev = np.asarray(obs["prev_actions"])
    if prev.ndim != 2:
        raise ValueError(f"prev_actions must be one (m, D) array, got shape {prev.shape}")
    frozen = obs.get("frozen_steps")
    if frozen is not None and (isinstance(frozen, bool) or not isinstance(frozen,
                                                                         int | np.integer)):
        raise ValueError(f"frozen_steps must be an int, got {frozen!r}")
    return {"prefix_actions": prev, "frozen_steps": None if frozen is None else int(frozen)}


class VLAPolicy(Policy):
    """A VLA checkpoint decoded with one decoder spec.

    ``infer`` returns ``actions`` (H, D) in env units, ``nfe`` (decoder passes after the prefix),
    ``prefix_nfe`` (1: the prefix is encoded in one pass) and ``policy_timing`` (the model's
    prefix/decode split in ms). With real-time chunking the observation also carries
    ``prev_actions`` (m, D) in env units and optionally ``frozen_steps`` (default m), passed to
    ``VLAModel.predict_chunk`` as the committed prefix; the result then reports
    ``frozen_steps``. The sampling decoders
    (``diffusion``, ``flow``) draw from a generator re-seeded by ``reset(seed=...)``, so an
    episode's actions depend only on its seed.

    Args:
        checkpoint: A model folder or a checkpoint set (see the module docstring).
        decoder: A decoder spec string or :class:`~vla.decoders.DecoderSpec`.
        device: Torch device for the model.

    Raises:
        ValueError: If the spec is invalid, the folder is missing or holds another head.
    """

    def __init__(self, checkpoint: str | Path, decoder: str | DecoderSpec,
                 device: str = "cpu") -> None:
        from vla.checkpoint import from_pretrained

        self.spec = parse_decoder_spec(decoder)
        self.path = check_checkpoint(checkpoint, self.spec)
        self.model = from_pretrained(self.path, device=device)
        self._kwargs = self.spec.predict_kwargs()
        self._stochastic = self.spec.stochastic
        self._shipped_instructions = frozenset(self.model.instructions.instructions)
        self.reset(seed=0)

    def reset(self, *, seed: int | None = None) -> None:
        """Re-seed the sampling generator of the diffusion and flow decoders."""
        if self._stochastic and seed is not None:
            import torch

            self._kwargs["generator"] = torch.Generator(self.model.device).manual_seed(seed)

    def forget_instruction(self, text: str) -> None:
        """Drop the cached MiniLM embedding of ``text``, unless it came with the checkpoint.

        Each new instruction is embedded once and kept; the policy server calls this to bound
        how many of them its clients can make the policy keep.
        """
        if text not in self._shipped_instructions:
            self.model.instructions.discard(text)

    @property
    def metadata(self) -> dict[str, Any]:
        """What a client of the policy server needs to know (sent on connect)."""
        cfg = self.model.config
        return {"server": "robodecode", "decoder": str(self.spec), "checkpoint": str(self.path),
                "head": cfg.head, "action_horizon": int(cfg.horizon),
                "action_dim": int(cfg.action_dim), "state_dim": int(cfg.state_dim),
                "cameras": list(cfg.cameras), "image_size": int(cfg.image_size),
                "observation_keys": [*cfg.cameras, "state", "instruction"],
                "actions_dtype": np.dtype(np.float32).str}

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Predict one chunk for one observation.

        Raises:
            ValueError: If ``obs`` is a batch or malformed (see ``VLAModel.prepare``), or its
                ``prev_actions`` / ``frozen_steps`` are (see ``VLAModel.action_prefix``).
        """
        state = obs.get("state") if isinstance(obs, dict) else None
        if state is not None and np.ndim(state) != 1:
            raise ValueError(f"infer takes one observation: state must be 1-D (S,), got shape "
                             f"{np.shape(state)}")
        rtc = rtc_kwargs(obs)
        tic = time.perf_counter()
        actions, stats = self.model.predict_chunk(obs, **self._kwargs, **rtc)
        extra = {"frozen_steps": int(stats["frozen_steps"])} if rtc else {}
        return {
            **extra,
            "actions": np.asarray(actions[0], dtype=np.float32),
            "nfe": int(stats["nfe"]),
            "prefix_nfe": 1,  # the observation prefix is encoded in one pass
            "decoder": str(self.spec),
            "policy_timing": {"prefix_ms": stats.get("prefix_ms"),
                              "decode_ms": stats.get("decode_ms"),
                              "infer_ms": (time.perf_counter() - tic) * 1000.0},
        }
