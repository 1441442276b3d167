"""Checkpoint folders: ``config.json``, ``model.safetensors``, ``stats.json``, instruction cache.

Usage: save_pretrained(model, "ckpt/ar"); model = from_pretrained("ckpt/ar")

Weights are stored in ``config.param_dtype`` (float16 by default: the measured action change is
reported by ``robodecode info``), normalization buffers always in float32. Saves are atomic
(written to a temporary sibling folder, then renamed over the target); loading never unpickles
and any mismatch or corruption raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vla.config import VLAConfig
from vla.encoders import InstructionCache
from vla.model import VLAModel

FORMAT = "robodecode-vla/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "stats.json"
INSTRUCTIONS_FILE = "instructions.safetensors"
TRAIN_STATE_FILE = "train_state.safetensors"
TRAIN_META_FILE = "train_state.json"
EARLY_EXIT_FILE = "early_exit.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, corrupt or does not match the model it describes."""


def _is_stat_buffer(name: str) -> bool:
    return name.startswith(("tokenizer.", "state_norm.")) or name in ("lang_proj.mean",
                                                                       "lang_proj.std")


def save_pretrained(model: VLAModel, path: str | os.PathLike,
                    train_state: dict[str, torch.Tensor] | None = None,
                    train_meta: dict[str, Any] | None = None,
                    extra_files: dict[str, Path] | None = None) -> Path:
    """Write ``model`` (and optionally a training state) atomically to the folder ``path``.

    Args:
        model: The model to save.
        path: Target folder; replaced as a whole if it exists.
        train_state: Tensors needed to resume training (fp32 weights, optimizer moments).
        train_meta: JSON-able training metadata (step, seed, history).
        extra_files: Files copied into the folder under the given names (e.g. distillation
            trajectories and the early-exit curve).

    Returns:
        The target folder.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        dtype = getattr(torch, model.config.param_dtype)
        tensors = {}
        for name, t in model.state_dict().items():
            t = t.detach().cpu()
            if t.is_floating_point():
                t = t.float() if _is_stat_buffer(name) else t.to(dtype)
            tensors[name] = t.contiguous()
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        meta = {"format": FORMAT, **model.config.to_dict()}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        stats = {"action": {"q01": model.tokenizer.q01.tolist(),
                            "q99": model.tokenizer.q99.tolist()},
                 "state": {"mean": model.state_norm.mean.tolist(),
                           "std": model.state_norm.std.tolist()}}
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2))
        model.instructions.save(tmp / INSTRUCTIONS_FILE)
        if train_state is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in train_state.items()},
                      str(tmp / TRAIN_STATE_FILE))
        if train_meta is not None:
            (tmp / TRAIN_META_FILE).write_text(json.dumps(train_meta, indent=2))
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_config(path: str | os.PathLike) -> VLAConfig:
    """Read and validate ``config.json`` of a checkpoint folder.

    Raises:
        CheckpointError: If the file is missing, not JSON, of another format or invalid.
    """
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{path} is not a VLA checkpoint: {CONFIG_FILE} is missing")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} is corrupt (not JSON): {exc}") from exc
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise CheckpointError(f"{file} is not a {FORMAT} checkpoint config")
    try:
        return VLAConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{file} holds an invalid config: {exc}") from exc


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (no pickle).

    Raises:
        CheckpointError: If the file is missing or not a readable safetensors file.
    """
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{file} is corrupt: {exc}") from exc


LEGACY_HEAD_PARAMS = ("tok_embed.", "lm_head.", "act_in.", "time_mlp.", "act_out.", "queries",
                      "act_mlp.")
"""Head parameters that checkpoints written before :mod:`vla.heads` stored at the top level
(``lm_head.weight``); they now live under ``head.`` (``head.lm_head.weight``)."""


def _current_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights named as the current model names them (older checkpoints load unchanged)."""
    return {f"head.{k}" if k.startswith(LEGACY_HEAD_PARAMS) else k: v
            for k, v in tensors.items()}


def from_pretrained(path: str | os.PathLike, allow_encoder: bool = True,
                    device: str | torch.device = "cpu") -> VLAModel:
    """Load a model saved by :func:`save_pretrained` (float32 in memory).

    Args:
        path: Checkpoint folder.
        allow_encoder: Whether instructions missing from the shipped cache may load MiniLM.
        device: Where to put the model.

    Raises:
        CheckpointError: If the folder is incomplete, corrupt or mismatched.
    """
    folder = Path(path)
    config = load_config(folder)
    instr_file = folder / INSTRUCTIONS_FILE
    cache = InstructionCache(allow_encoder=allow_encoder, n_tokens=config.lang_cache_tokens)
    if instr_file.exists():
        try:
            cache.merge_file(instr_file)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
    model = VLAModel(config, instructions=cache)
    tensors = _current_names(read_tensors(folder / WEIGHTS_FILE))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} does not match its config "
                              f"(head={config.head}): missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}")
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: {name} has shape "
                                  f"{tuple(t.shape)}, config implies {tuple(expected[name].shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: {name} has non-finite values")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    ee_file = folder / EARLY_EXIT_FILE
    if ee_file.is_file():
        try:
            sweep = json.loads(ee_file.read_text()).get("student_sweep") or {}
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{ee_file} is corrupt (not JSON): {exc}") from exc
        model.chosen_early_exit = sweep.get("chosen_setting")
    return model.to(device).eval()
