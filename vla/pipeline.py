"""What the ``train`` and ``info`` commands do, callable from Python too.

Usage: train_head(head="ar", data="scratch/vla/data/pickplace200", out="scratch/vla/ckpt/ar")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from vla.checkpoint import TRAIN_META_FILE, TRAIN_STATE_FILE, from_pretrained, read_tensors
from vla.config import VLAConfig, preset
from vla.data import load_split
from vla.distributed import SINGLE, DistContext, main_first
from vla.encoders import InstructionCache
from vla.heads import HEADS, head_class
from vla.model import VLAModel
from vla.train import TrainConfig, Trainer


def token_cache_path(path: Path | None, n_tokens: int | None) -> Path | None:
    """The shared cache file for ``n_tokens`` per-token entries, next to the pooled ``path``.

    ``instructions.safetensors`` holds pooled embeddings; per-token states of 16 word pieces
    live in ``instructions_tok16.safetensors`` beside it.
    """
    if path is None or n_tokens is None:
        return path
    path = Path(path)
    return path.with_name(f"{path.stem}_tok{n_tokens}{path.suffix}")


def open_instruction_cache(path: Path | None, texts: list[str],
                           n_tokens: int | None = None) -> InstructionCache:
    """Load the shared instruction cache, embed any new ``texts`` and save it back.

    With ``n_tokens`` the per-token cache beside ``path`` (:func:`token_cache_path`) is used.
    """
    path = token_cache_path(path, n_tokens)
    cache = InstructionCache(path, n_tokens=n_tokens)
    before = len(cache)
    cache.add(texts)
    if path is not None and len(cache) != before:
        cache.save()
    return cache


def train_head(*, head: str, data: Path, out: Path, steps: int = 3000, batch_size: int = 64,
               lr: float = 1e-3, seed: int = 0, device: str = "cpu", preset_name: str = "cpu",
               horizon: int = 8, ema: float = 0.0, warmup: int = 100, val_fraction: float = 0.1,
               augment_shift: int = 4,
               eval_every: int = 250, resume: bool = True,
               instruction_cache: Path | None = None, data_cache: Path | None = None,
               progress: bool = True, config_overrides: dict[str, Any] | None = None,
               dist: DistContext = SINGLE) -> dict[str, Any]:
    """Train (or resume) one head on a dataset folder and save the checkpoint to ``out``.

    Under ``torchrun`` (``dist`` from :func:`vla.distributed.setup`) every rank runs this;
    rank 0 fills the data and instruction caches first and alone writes the checkpoint.

    Returns:
        A summary: head, parameters, steps, final train/validation metrics, steps/s.

    Raises:
        ValueError: On an unknown head, or a checkpoint in ``out`` of another head.
    """
    head_class(head)  # an unknown head fails here, naming the known ones
    out = Path(out)
    resuming = dist.broadcast(resume and (out / TRAIN_STATE_FILE).is_file())
    overrides = dict(config_overrides or {})
    if resuming:
        model = from_pretrained(out)
        if model.config.head != head:
            raise ValueError(f"out={str(out)!r} holds a {model.config.head!r} run, not "
                             f"{head!r}; choose another --out or pass --no-resume")
        layout = model.config
    else:
        layout = preset(preset_name, head=head, horizon=horizon, **overrides)
    with main_first(dist):  # rank 0 writes the caches, the others then read them
        split = load_split(data, layout.horizon, layout.cameras, layout.image_size,
                           val_fraction=val_fraction, seed=seed, cache_dir=data_cache)
        texts = split.train.instructions + (split.val.instructions if split.val else [])
        shared = open_instruction_cache(instruction_cache, texts, layout.lang_cache_tokens)
    if not resuming:  # action and state sizes come from the data
        torch.manual_seed(seed)
        model = VLAModel(preset(preset_name, head=head, horizon=horizon,
                                action_dim=split.action_dim, state_dim=split.state_dim,
                                **overrides),
                         instructions=InstructionCache(n_tokens=layout.lang_cache_tokens))
    for t in texts:  # the checkpoint carries the embeddings of its data's instructions
        model.instructions.put(t, shared.embed([t])[0])
    if not resuming:
        model.set_stats(split.stats, instructions=split.train.instructions)
    model.to(device)
    tcfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, ema=ema,
                       seed=seed, eval_every=eval_every, augment_shift=augment_shift)
    trainer = Trainer(model, split.train, split.val, tcfg, out, dist=dist)
    if resuming:
        trainer.resume()
    history = trainer.run(progress=progress)
    if not history or history[-1]["step"] != trainer.step:
        trainer.save()
    last = history[-1] if history else {}
    return {"head": head, "out": str(out), "params": model.num_parameters(),
            "steps": trainer.step, "train_items": len(split.train),
            "val_items": len(split.val) if split.val else 0, **last}


def head_param_table(config: VLAConfig) -> dict[str, int]:
    """Trainable parameters of each registered head at ``config`` (its ``head`` varied)."""
    out = {}
    for h in HEADS:
        config = dataclasses.replace(config, head=h)
        cache = InstructionCache(allow_encoder=False, n_tokens=config.lang_cache_tokens)
        out[h] = VLAModel(config, instructions=cache).num_parameters()
    return out


def describe_checkpoint(path: Path, add_instructions: list[str] | None = None
                        ) -> dict[str, Any]:
    """Config, parameters, training summary and fp16 storage error of a checkpoint.

    With ``add_instructions`` the texts are embedded (MiniLM) into the checkpoint's
    instruction cache, which is rewritten in place.
    """
    import json

    from vla.checkpoint import INSTRUCTIONS_FILE

    model = from_pretrained(path, allow_encoder=add_instructions is not None)
    out: dict[str, Any] = {"path": str(path), "head": model.config.head,
                           "params": model.num_parameters(),
                           "config": model.config.to_dict(),
                           "instructions_cached": len(model.instructions)}
    if add_instructions:
        model.instructions.add(add_instructions)
        model.instructions.save(Path(path) / INSTRUCTIONS_FILE)
        out["instructions_cached"] = len(model.instructions)
    meta_file = Path(path) / TRAIN_META_FILE
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        out["train_step"] = meta.get("step")
        out["last_log"] = (meta.get("history") or [{}])[-1]
    state_file = Path(path) / TRAIN_STATE_FILE
    if state_file.is_file() and model.config.param_dtype == "float16":
        state = read_tensors(state_file)
        worst = 0.0
        for n, p in model.named_parameters():
            ref = state.get(f"ema.{n}", state.get(f"param.{n}"))
            if ref is not None:
                worst = max(worst, float((p.detach() - ref).abs().max()))
        out["fp16_max_abs_weight_error"] = worst
    return out
