"""The VLA behind the policy contract: one checkpoint, one decoder spec.

Usage: ``VLAPolicy("scratch/ckpt/ar", "jacobi+ee").infer(obs)["actions"]`` -> (H, D)

``checkpoint`` is either one model folder (``config.json`` + ``model.safetensors``, as written
by ``robodecode train``) or a *checkpoint set*: a folder holding one model folder per head,
named ``ar``, ``diffusion``, ``flow``, ``oft``, plus ``cjacobi`` for the consistency-distilled
AR head. With a set, the spec picks the folder (``cjacobi+ee`` -> ``<set>/cjacobi``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    episode's actions depend only on its seed. :meth:`infer_batch` answers many observations
    with batched decodes (the policy server's batching).

    Args:
        checkpoint: A model folder or a checkpoint set (see the module docstring).
        decoder: A decoder spec string or :class:`~vla.decoders.DecoderSpec`.
        device: Torch device for the model.
        fast: Run the model's fast path (``predict_chunk(..., fast=True)``: static KV cache,
            CUDA graphs on a GPU; :mod:`vla.fast`); off, the keyword is not passed.

    Raises:
        ValueError: If the spec is invalid, the folder is missing or holds another head.
    """

    def __init__(self, checkpoint: str | Path, decoder: str | DecoderSpec,
                 device: str = "cpu", fast: bool = False) -> None:
        from vla.checkpoint import from_pretrained

        self.spec = parse_decoder_spec(decoder)
        self.path = check_checkpoint(checkpoint, self.spec)
        self.model = from_pretrained(self.path, device=device)
        self.fast = bool(fast)
        self._kwargs = self.spec.predict_kwargs() | ({"fast": True} if self.fast else {})
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
                "actions_dtype": np.dtype(np.float32).str, "fast": self.fast}

    def warm_up(self, frame: tuple[int, int], max_batch: int = 1) -> int:
        """Decode blank observations of ``frame`` (H, W) at batch 1, 2, 4, .., ``max_batch``.

        The fast path captures its CUDA graphs per frame shape and padded batch size on first
        use; a server warms up so that its first clients do not pay for that. Returns the
        number of warm-up calls made.
        """
        cfg = self.model.config
        obs = {cam: np.zeros((*frame, 3), np.uint8) for cam in cfg.cameras}
        obs |= {"state": np.zeros(cfg.state_dim, np.float32),
                "instruction": next(iter(sorted(self._shipped_instructions)), "warm up")}
        calls, size = 0, 1
        while size <= max(1, max_batch):
            self.infer_batch([obs] * size)
            calls, size = calls + 1, size * 2
        self.reset(seed=0)
        return calls

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
        return self._results(actions, stats, bool(rtc), tic)[0]

    def infer_batch(self, observations: Sequence[dict[str, Any]]) -> list[Any]:
        """Predict one chunk per observation, decoding compatible observations as one batch.

        Observations that can share a forward pass (well-formed, with the same camera frame
        shapes and the same real-time-chunking prefix length and ``frozen_steps``, or none)
        are stacked into one ``predict_chunk`` call. Any other observation, or one alone in
        its group, goes through :meth:`infer` by itself, so it fails (or succeeds) exactly as
        it would alone and never fails the others; if a stacked call fails anyway, its rows
        are retried one by one. Every row uses this policy's one decoder and its settings.

        What batching keeps (tested in ``tests/policies/test_batching.py``):

        - ``ar``, ``jacobi``, ``cjacobi`` and their ``+ee`` forms: each row gets the tokens it
          gets alone (Jacobi's early exit is judged per row), as long as batched float
          arithmetic keeps every argmax, which a near-tie could in principle flip. ``nfe`` is
          the row's own passes (what it costs alone); ``batch_nfe`` the passes the batch made
          (the slowest row's: the cost paid).
        - ``oft``: equal up to float rounding (batched matmuls round differently, ~1e-6).
        - ``diffusion``, ``flow``: the batch draws its noise in one call from the policy's
          generator. Rows get independent noise of the same distribution, not the draw each
          would get alone: samples depend on which requests share a batch, as the serial
          server's depend on the order of requests. No equality is claimed; the same list
          after the same ``reset(seed=...)`` gives the same samples.

        Returns:
            One entry per observation, in order: its result (as :meth:`infer`'s, plus
            ``batch_size`` and ``batch_nfe`` when it shared a decode) or the exception it
            raised.
        """
        outcomes: list[Any] = [None] * len(observations)
        groups: dict[Any, list[int]] = {}
        for i, obs in enumerate(observations):
            key = self._batch_key(obs)
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        for key, rows in groups.items():
            if len(rows) > 1:
                try:
                    results = self._infer_stacked([observations[i] for i in rows], key[1])
                except Exception:  # noqa: BLE001 - retried row by row below
                    results = None
                if results is not None:
                    for i, result in zip(rows, results, strict=True):
                        outcomes[i] = result
                    continue
            for i in rows:
                try:
                    outcomes[i] = self.infer(observations[i])
                except Exception as err:  # noqa: BLE001 - that observation's own outcome
                    outcomes[i] = err
        return outcomes

    def _batch_key(self, obs: Any) -> tuple | None:
        """What an observation must share with others to be stacked; ``None``: run it alone.

        ``None`` for anything the model might refuse (wrong keys, types, shapes, NaN, an
        instruction that cannot be embedded), so the model's own check answers it.
        """
        cfg = self.model.config
        if not isinstance(obs, dict) or not isinstance(obs.get("instruction"), str):
            return None
        shapes = []
        for key in cfg.cameras:
            img = obs.get(key)
            if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                    and img.shape[-1] == 3 and img.size > 0):
                return None
            shapes.append(img.shape)
        state = _numbers(obs.get("state"))
        if state is None or state.shape != (cfg.state_dim,) or not np.isfinite(state).all():
            return None
        rtc = None
        prev, frozen = _numbers(obs.get("prev_actions")), obs.get("frozen_steps")
        if prev is not None:
            m = prev.shape[0] if prev.ndim == 2 else 0
            frozen = m if frozen is None else frozen
            if not (prev.ndim == 2 and prev.shape[1] == cfg.action_dim and 1 <= m <= cfg.horizon
                    and np.isfinite(prev).all() and isinstance(frozen, int | np.integer)
                    and not isinstance(frozen, bool) and 0 <= frozen <= min(m, cfg.horizon - 1)):
                return None
            rtc = (m, int(frozen))
        elif obs.get("prev_actions") is not None or frozen is not None:
            return None
        try:  # a new instruction is embedded (MiniLM) here, alone, so a failure stays its own
            self.model.instructions.add([obs["instruction"]])
        except Exception:  # noqa: BLE001 - infer raises it for this observation alone
            return None
        return tuple(shapes), rtc

    def _infer_stacked(self, rows: list[dict[str, Any]], rtc: tuple[int, int] | None
                       ) -> list[dict[str, Any]]:
        """One ``predict_chunk`` over observations that share a :meth:`_batch_key`."""
        batch: dict[str, Any] = {key: np.stack([r[key] for r in rows])
                                 for key in self.model.config.cameras}
        batch["state"] = np.stack([np.asarray(r["state"], dtype=np.float32) for r in rows])
        batch["instruction"] = [r["instruction"] for r in rows]
        prefix = {} if rtc is None else {
            "prefix_actions": np.stack([np.asarray(r["prev_actions"], dtype=np.float32)
                                        for r in rows]), "frozen_steps": rtc[1]}
        tic = time.perf_counter()
        actions, stats = self.model.predict_chunk(batch, **self._kwargs, **prefix)
        return [{**r, "batch_size": len(rows), "batch_nfe": int(stats["nfe"])}
                for r in self._results(actions, stats, rtc is not None, tic)]

    def _results(self, actions: np.ndarray, stats: dict[str, Any], rtc: bool,
                 tic: float) -> list[dict[str, Any]]:
        """One result per row of a ``predict_chunk`` answer (see the class docstring).

        A row's ``nfe`` is its own pass count where the decoder reports one per row (Jacobi's
        ``passes_per_row``, masked diffusion's ``steps_per_row``), else the decode's.
        """
        extra = {"frozen_steps": int(stats["frozen_steps"])} if rtc else {}
        timing = {"prefix_ms": stats.get("prefix_ms"), "decode_ms": stats.get("decode_ms"),
                  "infer_ms": (time.perf_counter() - tic) * 1000.0}
        per_row = stats.get("decoder_passes_per_row", stats.get("decoder_steps_per_row"))
        if per_row is None or len(per_row) != len(actions):
            per_row = [stats["nfe"]] * len(actions)
        return [{**extra, "actions": np.asarray(row, dtype=np.float32), "nfe": int(nfe),
                 "prefix_nfe": 1,  # the observation prefix is encoded in one pass
                 "decoder": str(self.spec), "policy_timing": dict(timing)}
                for row, nfe in zip(actions, per_row, strict=True)]


def _numbers(value: Any) -> np.ndarray | None:
    """``value`` as a float32 array if it holds plain numbers (what torch takes), else ``None``."""
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
        return None
    return array.astype(np.float32)
