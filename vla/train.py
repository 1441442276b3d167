"""Training loop shared by every head: AdamW, warm-up + cosine, clipping, EMA, resumable.

Usage: robodecode train --head ar --data scratch/data/pickplace --out scratch/ckpt/ar

Determinism: step ``k`` draws its batch, masks and noise from a generator seeded with
``(seed, k)``, so a run is reproducible on CPU and a resumed run continues exactly where the
saved one stopped (weights, AdamW moments and EMA are stored in the checkpoint folder).
Under ``torchrun`` the same loop runs data-parallel (:mod:`vla.distributed`): every rank draws
the same global batch and trains on its slice, DDP averages the gradients, rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vla.checkpoint import TRAIN_META_FILE, TRAIN_STATE_FILE, read_tensors, save_pretrained
from vla.data import ChunkTensors
from vla.distributed import SINGLE, DistContext, LossModule, slice_weight, take, wrap
from vla.model import VLAModel


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: Optimiser steps in total (a resumed run stops at the same total).
        batch_size: Items per step.
        lr: Peak learning rate.
        weight_decay: AdamW decay on matrices (not on biases, norms, embeddings of positions).
        warmup: Linear warm-up steps before the cosine decay to ``lr * min_lr_ratio``.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        grad_clip: Max global gradient norm.
        ema: EMA decay of the exported weights (0 disables EMA).
        augment_shift: Random-shift image augmentation in pixels (0 disables it).
        seed: Seed of batches, masks and noise.
        eval_every: Steps between validation passes (and checkpoint saves).
        val_batches: Batches averaged per validation pass.
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema: float = 0.0
    augment_shift: int = 4
    seed: int = 0
    eval_every: int = 250
    val_batches: int = 4

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "val_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift must be >= 0, got {self.augment_shift}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = (step - self.warmup) / max(1, self.steps - self.warmup)
        cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cos)


def _param_groups(model: VLAModel, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "pos" not in name.split(".")[-1] else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model: VLAModel, data: ChunkTensors, lang_table: torch.Tensor, batch_size: int,
             n_batches: int, seed: int = 12345) -> dict[str, float]:
    """Mean loss (and token accuracy) over ``n_batches`` fixed random batches of ``data``."""
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        idx = torch.randint(len(data), (min(batch_size, len(data)),), generator=g)
        obs, actions, pad = data.batch(idx, lang_table, model.config.image_size)
        _, metrics = model.compute_loss(obs, actions, pad, generator=g)
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + v / n_batches
    model.train(was_training)
    return totals


class Trainer:
    """Runs :class:`TrainConfig` on a model and saves/resumes through its checkpoint folder.

    Args:
        model: The model (stats already set, e.g. with ``model.set_stats``).
        train_data: Training tensors.
        val_data: Held-out tensors (episodes unseen in training) or ``None``.
        config: Optimisation settings.
        out: Checkpoint folder written every ``eval_every`` steps and at the end.
        dist: This process's place in a data-parallel run (``torchrun``); one process by
            default. ``config.batch_size`` is the global batch either way.
    """

    def __init__(self, model: VLAModel, train_data: ChunkTensors, val_data: ChunkTensors | None,
                 config: TrainConfig, out: str | Path, dist: DistContext = SINGLE) -> None:
        dev = model.device
        if model.config.aux_target_weight > 0:
            from vla.data import grasp_release_targets, gripper_close_sign

            sign = gripper_close_sign(train_data)
            train_data = dataclasses.replace(train_data,
                                             aux=grasp_release_targets(train_data, close_sign=sign))
            if val_data is not None:
                val_data = dataclasses.replace(val_data,
                                               aux=grasp_release_targets(val_data, close_sign=sign))
        self.model, self.train_data = model, train_data.to(dev)
        self.val_data = val_data.to(dev) if val_data is not None else None
        self.config, self.out, self.dist = config, Path(out), dist
        if dist.enabled:
            dist.shard(config.batch_size)  # a batch smaller than the world size fails here
        self.loss_module = wrap(LossModule(model, _compute_loss), dist, str(dev))
        self.opt = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr,
                                     betas=(0.9, 0.95))
        self.ema = ({n: p.detach().clone() for n, p in model.named_parameters()}
                    if config.ema > 0 else None)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.lang_train = model.instructions.embed(train_data.instructions).to(dev)
        self.lang_val = (model.instructions.embed(val_data.instructions).to(dev)
                         if val_data is not None else None)

    # ------------------------------------------------------------------ save / resume
    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"param.{n}": p.detach().float().clone()
                 for n, p in self.model.named_parameters()}
        params = [p for g in self.opt.param_groups for p in g["params"]]
        for i, p in enumerate(params):
            st = self.opt.state.get(p)
            if st:
                state[f"opt.{i}.exp_avg"] = st["exp_avg"]
                state[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"]
                state[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64)
        if self.ema is not None:
            state.update({f"ema.{n}": t for n, t in self.ema.items()})
        return state

    def save(self) -> None:
        """Write the checkpoint (EMA weights exported when EMA is on) with the resume state."""
        if not self.dist.is_main:
            return
        meta = {"step": self.step, "train": asdict(self.config), "history": self.history}
        if self.ema is None:
            save_pretrained(self.model, self.out, self._state(), meta)
            return
        raw = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        state = self._state()
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(self.ema[n])
            save_pretrained(self.model, self.out, state, meta)
            for n, p in self.model.named_parameters():
                p.copy_(raw[n])

    def resume(self) -> bool:
        """Restore weights, optimiser, EMA and step from ``out`` if it holds a training state."""
        import json

        state_file, meta_file = self.out / TRAIN_STATE_FILE, self.out / TRAIN_META_FILE
        if not (state_file.is_file() and meta_file.is_file()):
            return False
        state = read_tensors(state_file)
        meta = json.loads(meta_file.read_text())
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if f"param.{n}" not in state:
                    raise ValueError(f"{state_file} lacks parameter {n}: not this model's run")
                p.copy_(state[f"param.{n}"])
        params = [p for g in self.opt.param_groups for p in g["params"]]
        for i, p in enumerate(params):
            if f"opt.{i}.exp_avg" in state:
                self.opt.state[p] = {"exp_avg": state[f"opt.{i}.exp_avg"].to(p.device),
                                     "exp_avg_sq": state[f"opt.{i}.exp_avg_sq"].to(p.device),
                                     "step": state[f"opt.{i}.step"].float().reshape(())}
        if self.ema is not None:
            self.ema = {n: state.get(f"ema.{n}", p.detach().clone()).to(p.device)
                        for n, p in self.model.named_parameters()}
        self.step, self.history = int(meta["step"]), list(meta.get("history", []))
        return True

    # ----------------------------------------------------------------------- the loop
    def validate(self) -> dict[str, float]:
        """Validation metrics (``val_*``) on the held-out episodes, if any."""
        if self.val_data is None:
            return {}
        m = evaluate(self.model, self.val_data, self.lang_val, self.config.batch_size,
                     self.config.val_batches)
        return {f"val_{k}": v for k, v in m.items()}

    def run(self, progress: bool = True, until: int | None = None) -> list[dict[str, Any]]:
        """Train until ``config.steps`` (or stop early at step ``until``); returns the history.

        Stopping at ``until`` saves a checkpoint there, as an interrupted run's last save.
        """
        from tqdm.auto import tqdm

        cfg, model = self.config, self.model
        model.train()
        dist = self.dist
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (progress and dist.is_main),
                   desc="train",
                   dynamic_ncols=True)
        t_start, first = time.perf_counter(), self.step
        running: dict[str, float] = {}
        stop = cfg.steps if until is None else min(until, cfg.steps)
        while self.step < stop:
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
            idx = torch.randint(len(self.train_data), (cfg.batch_size,), generator=g)
            obs, actions, pad = self.train_data.batch(idx, self.lang_train,
                                                      model.config.image_size,
                                                      shift=cfg.augment_shift, generator=g)
            if dist.enabled:  # this rank's slice; its own stream for the loss's randomness
                part = dist.shard(cfg.batch_size)
                weight = slice_weight(~pad.bool(), part)
                obs, actions, pad = take(obs, part), actions[part], pad[part]
                g = torch.Generator().manual_seed(
                    int(torch.randint(2**62, (1,), generator=g)) + dist.rank)
            loss, metrics = self.loss_module(obs, actions, pad, g)
            if dist.enabled:
                loss = loss * (weight * dist.world_size)
                metrics = dist.reduce_metrics(metrics, weight)
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr_at(self.step)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.opt.step()
            if self.ema is not None:
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        self.ema[n].lerp_(p.detach(), 1 - cfg.ema)
            self.step += 1
            for k, v in metrics.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
            if self.step % cfg.eval_every == 0 or self.step in (cfg.steps, stop):
                elapsed = time.perf_counter() - t_start
                entry = None
                if dist.is_main:  # rank 0 validates; the others receive its entry
                    entry = {"step": self.step, "lr": cfg.lr_at(self.step - 1),
                             "grad_norm": float(grad_norm),
                             "steps_per_s": (self.step - first) / max(elapsed, 1e-9),
                             **{f"train_{k}": v for k, v in running.items()},
                             **self.validate()}
                    bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in entry.items()))
                self.history.append(dist.broadcast(entry))
                self.save()
        bar.close()
        return self.history


def _compute_loss(model: VLAModel, obs: Any, actions: torch.Tensor, pad: torch.Tensor,
                  g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    return model.compute_loss(obs, actions, pad, generator=g)
