"""Consistency distillation of the AR head (CEED-VLA / CLLM) and its early-exit choice.

Usage: robodecode distill --teacher scratch/vla/ckpt/ar --data DATA --out scratch/vla/ckpt/cjacobi

1. **Trajectories.** For training observations the teacher runs greedy Jacobi over the whole
   chunk from the decoder's default first guess (the BOS id repeated, ``decoding.jacobi``'s
   ``init="repeat"``); every iterate y^0 .. y^K = y* (the fixed point, equal to greedy AR) is
   stored (``trajectories.safetensors`` in the student's folder).
2. **Student** (initialised from the teacher). Per item a random non-final point y^k:
   *consistency loss* = soft cross-entropy between the student's logits on [BOS, y^k[:-1]] and
   its own detached logits on [BOS, y*[:-1]] (CLLM's global consistency loss), positions whose
   context is already correct (the prefix where y^k = y*) masked; plus ``ar_weight`` x the *AR
   loss* on mixed labels: each item's labels are the demonstration's tokens with probability
   ``gt_label_prob``, else the teacher's fixed point (against error accumulation). The
   teacher's training regularizers (``ar_input_noise``, random image shift) can be kept on
   (``keep_input_noise``, ``augment_shift``); by default they are off.
3. **Collapse watch.** Every evaluation logs the repetition rate (share of tokens equal to
   their predecessor) of the student's greedy chunks next to the demonstrations' own rate, and
   the mean Jacobi passes to the fixed point. The recipe keeps the AR loss dominant (x10),
   labels partly ground truth, the learning rate low and the correct prefix masked, which is
   what keeps the rate at the data's level.
4. **Teacher mix** (optional, ``teacher_mix``). The trained student's weights are moved part
   of the way back towards the teacher's (WiSE-FT weight-space interpolation);
   ``mix_with_teacher`` does the same to a saved student.
5. **Early exit.** The relaxed-convergence setting is picked on held-out episodes: the
   cheapest ``EarlyExit`` whose action error stays within 1.1x greedy AR's (teacher);
   the curve and the choice are saved as ``early_exit.json`` in the student's folder.

Under ``torchrun`` (:mod:`vla.distributed`) rank 0 collects the trajectories and sends them to
the others; every rank draws the same global batch and trains on its slice (DDP); rank 0 alone
evaluates, sweeps and writes. Each rank draws its items' points and labels from its own stream.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vla.checkpoint import from_pretrained, read_tensors, save_pretrained
from vla.data import ChunkTensors, load_split
from vla.distributed import SINGLE, DistContext, LossModule, take, wrap
from vla.evaluate import action_error, eval_indices, repetition_rate, sweep_early_exit
from vla.heads.ar import noisy_inputs
from vla.model import Observation, VLAModel
from vla.train import TrainConfig


@dataclass
class DistillConfig:
    """Settings of consistency distillation.

    Attributes:
        steps: Student optimiser steps.
        batch_size: Items per step.
        lr: Peak learning rate (warm-up then cosine).
        warmup: Warm-up steps.
        n_trajectories: Training observations whose Jacobi trajectories are collected.
        ar_weight: Weight of the AR loss next to the consistency loss (CLLM: 10).
        gt_label_prob: Probability that an item's AR labels are the demonstration's tokens
            (else the teacher's fixed point).
        seed: Seed of trajectory items, points, labels and batches.
        eval_every: Steps between held-out evaluations.
        n_eval: Held-out observations for the early-exit sweep.
        grad_clip: Max gradient norm.
        keep_input_noise: Corrupt the AR term's teacher-forced inputs with the teacher's own
            ``ar_input_noise``, as in its training. Off: with it (and ``augment_shift=4``) the
            students of the shipped teachers did worse closed loop, 80.0% against 87.3%
            (``experiments/results/cjacobi-selection/``).
        augment_shift: Random-shift image augmentation in pixels (0 disables it).
        teacher_mix: After training, move the student's weights this far back towards the
            teacher's: (1 - m) x student + m x teacher (WiSE-FT weight-space interpolation,
            Wortsman et al. 2022); the early-exit sweep then runs on the mixed student. 0 keeps
            the trained student. The shipped default task uses 0.5: on selection seeds its
            students reach 89.7% against 87.3% unmixed at the same passes
            (``experiments/results/cjacobi-selection/``).
    """

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-4
    warmup: int = 50
    n_trajectories: int = 2048
    ar_weight: float = 10.0
    gt_label_prob: float = 0.5
    seed: int = 0
    eval_every: int = 250
    n_eval: int = 256
    grad_clip: float = 1.0
    keep_input_noise: bool = False
    augment_shift: int = 0
    teacher_mix: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_trajectories", "eval_every", "n_eval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.gt_label_prob <= 1.0:
            raise ValueError(f"gt_label_prob must be in [0, 1], got {self.gt_label_prob}")
        if self.ar_weight < 0:
            raise ValueError(f"ar_weight must be >= 0, got {self.ar_weight}")
        _check_teacher_mix(self.teacher_mix)
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift must be >= 0, got {self.augment_shift}")


def _check_teacher_mix(teacher_mix: float) -> None:
    if not 0.0 <= teacher_mix < 1.0:
        raise ValueError(f"teacher_mix must be in [0, 1), got {teacher_mix}")


@torch.no_grad()
def mix_weights(student: VLAModel, teacher: VLAModel, teacher_mix: float) -> None:
    """Set the student's weights to ``(1 - teacher_mix) x student + teacher_mix x teacher``."""
    theirs = teacher.state_dict()
    for name, mine in student.state_dict().items():
        if mine.is_floating_point():
            mine.copy_((1 - teacher_mix) * mine + teacher_mix * theirs[name].to(mine))


def mix_with_teacher(teacher_dir: Path, student_dir: Path, out: Path,
                     teacher_mix: float) -> Path:
    """Write a distilled checkpoint moved towards its teacher (``mix_weights``) to ``out``.

    For students distilled with ``teacher_mix=0``: the early-exit choice and curve are the
    unmixed student's (recorded as such in ``early_exit.json``); distilling with
    ``DistillConfig.teacher_mix`` instead sweeps the mixed student.
    """
    _check_teacher_mix(teacher_mix)
    teacher = from_pretrained(teacher_dir, allow_encoder=False)
    student = from_pretrained(student_dir, allow_encoder=False)
    if teacher.config != student.config:
        raise ValueError(f"{student_dir} was not distilled from {teacher_dir} (configs differ)")
    mix_weights(student, teacher, teacher_mix)
    ee = json.loads((Path(student_dir) / "early_exit.json").read_text())
    ee["config"]["teacher_mix"] = teacher_mix
    ee["teacher_mix_after_sweep"] = True
    meta = json.loads((Path(student_dir) / "train_state.json").read_text())
    meta["distill"]["teacher_mix"] = teacher_mix
    meta["teacher_dir"] = str(teacher_dir)
    with tempfile.TemporaryDirectory(prefix="mix-") as tmp:
        ee_file = Path(tmp) / "early_exit.json"
        ee_file.write_text(json.dumps(ee, indent=2))
        return save_pretrained(student, out, train_meta=meta,
                               extra_files={"early_exit.json": ee_file})


def _greedy_pass(model: VLAModel, obs: Observation, y: torch.Tensor) -> torch.Tensor:
    """One Jacobi pass: argmax at every position given [BOS, y[:-1]] (prefix + causal)."""
    head = model.head
    inputs = torch.cat([head.bos_ids(y.shape[0], model.device), y[:, :-1]], dim=1)
    h = model.backbone.run_full(model.prefix_tokens(obs), head.tok_embed(inputs), causal=True)
    return head.lm_head(h).argmax(-1)


@torch.no_grad()
def jacobi_trajectories(model: VLAModel, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy whole-chunk Jacobi iterates from the all-BOS guess until every row is fixed.

    Returns:
        ``(states, n_iter)``: states (B, n + 2, n) with ``states[:, 0]`` the first guess and
        ``states[:, j]`` the iterate after ``j`` passes (rows padded with their fixed point);
        ``n_iter`` (B,) passes after which the row first equals its fixed point y* (exact
        Jacobi with acceptance, ``decoding.jacobi``, needs this many passes or one more to
        verify the last changed tokens).
    """
    model.eval()
    n = model.config.n_action_tokens
    b = obs.batch_size
    y = torch.full((b, n), model.config.bos_id, dtype=torch.long, device=model.device)
    states = [y]
    done = torch.zeros(b, dtype=torch.bool, device=model.device)
    for _ in range(n + 1):
        new = _greedy_pass(model, obs, y)
        done |= (new == y).all(1)
        y = torch.where(done[:, None], y, new)
        states.append(y)
        if bool(done.all()):
            break
    while len(states) < n + 2:
        states.append(y)
    stacked = torch.stack(states, dim=1)
    n_iter = (stacked != y[:, None]).any(-1).sum(1)
    return stacked, n_iter


def collect_trajectories(model: VLAModel, data: ChunkTensors, lang: torch.Tensor, n: int,
                         seed: int, batch: int = 256) -> dict[str, torch.Tensor]:
    """Jacobi trajectories of ``n`` random training items (see :func:`jacobi_trajectories`)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:n]
    states, iters = [], []
    for s in range(0, len(idx), batch):
        obs, _, _ = data.batch(idx[s:s + batch], lang, model.config.image_size)
        st, it = jacobi_trajectories(model, obs)
        states.append(st.to(torch.int16).cpu())
        iters.append(it.cpu())
    return {"index": idx, "states": torch.cat(states), "n_iter": torch.cat(iters)}


def distill_loss(student: VLAModel, obs: Observation, gt_tokens: torch.Tensor,
                 states: torch.Tensor, n_iter: torch.Tensor, cfg: DistillConfig,
                 g: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Consistency + weighted mixed-label AR loss of one batch (see the module docstring)."""
    dev = student.device
    b, _, n = states.shape
    fixed = states[torch.arange(b), n_iter].long().to(dev)  # states[K] = y* (rows padded)
    k = (torch.rand(b, generator=g) * n_iter.clamp_min(1).float()).long()  # 0 <= k < K
    y_k = states[torch.arange(b), k].long().to(dev)
    use_gt = (torch.rand(b, generator=g) < cfg.gt_label_prob).to(dev)
    labels = torch.where(use_gt[:, None], gt_tokens.to(dev), fixed)
    head = student.head
    bos = head.bos_ids(b, student.device)
    prefix = student.prefix_tokens(obs)
    ar_inputs = torch.cat([bos, labels[:, :-1]], 1)
    if cfg.keep_input_noise:
        ar_inputs = noisy_inputs(ar_inputs, student.config.ar_input_noise,
                                 student.config.n_bins, g)
    emb = head.tok_embed(torch.cat([torch.cat([bos, y_k[:, :-1]], 1), ar_inputs]))
    h = student.backbone.run_full(torch.cat([prefix, prefix]), emb, causal=True)
    logits_c, logits_ar = head.lm_head(h).split(b)
    with torch.no_grad():
        h_star = student.backbone.run_full(prefix.detach(), head.tok_embed(
            torch.cat([bos, fixed[:, :-1]], 1)), causal=True)
        target = F.softmax(head.lm_head(h_star).float(), -1)
    # Output i sees y_k[:i]; its context is already correct while y_k[:i] == y*[:i].
    mismatch = (y_k != fixed).long()
    first_bad = torch.where(mismatch.any(1), mismatch.argmax(1), torch.full_like(k, n).to(dev))
    pos = torch.arange(n, device=dev)[None]
    keep = (pos > first_bad[:, None]).float()
    soft_ce = -(target * F.log_softmax(logits_c.float(), -1)).sum(-1)
    consistency = (soft_ce * keep).sum() / keep.sum().clamp_min(1.0)
    ar = F.cross_entropy(logits_ar.flatten(0, 1).float(), labels.flatten())
    loss = consistency + cfg.ar_weight * ar
    return loss, {"loss": float(loss.detach()), "consistency": float(consistency.detach()),
                  "ar": float(ar.detach())}


@torch.no_grad()
def heldout_metrics(model: VLAModel, data: ChunkTensors, lang: torch.Tensor,
                    idx: torch.Tensor) -> dict[str, float]:
    """Mean passes to the fixed point, repetition rate, AR token accuracy on held-out items."""
    obs, actions, _ = data.batch(idx, lang, model.config.image_size)
    states, n_iter = jacobi_trajectories(model, obs)
    gt = model.tokenizer.encode(actions.to(model.device))
    fixed = states[torch.arange(len(idx), device=states.device), n_iter]
    return {"jacobi_passes": float(n_iter.float().mean()),
            "repetition": repetition_rate(fixed), "repetition_data": repetition_rate(gt),
            "token_acc_vs_data": float((fixed == gt).float().mean())}


def distill(teacher: VLAModel, train: ChunkTensors, val: ChunkTensors | None,
            cfg: DistillConfig, out: Path, progress: bool = True,
            dist: DistContext = SINGLE) -> dict[str, Any]:
    """Run trajectory collection, student training and the early-exit sweep; save to ``out``.

    With several processes (``dist``) only rank 0 returns the summary; the others return ``{}``.
    """
    from tqdm.auto import tqdm

    dev = teacher.device
    train, val = train.to(dev), (val.to(dev) if val is not None else None)
    lang = teacher.instructions.embed(train.instructions).to(dev)
    lang_val = teacher.instructions.embed(val.instructions).to(dev) if val is not None else None
    traj = dist.broadcast(collect_trajectories(teacher, train, lang, cfg.n_trajectories,
                                               cfg.seed) if dist.is_main else None)
    student = VLAModel(teacher.config, instructions=teacher.instructions).to(dev)
    student.load_state_dict(teacher.state_dict())
    loss_module = wrap(LossModule(student, lambda m, *a: distill_loss(m, *a[:4], cfg, a[4])),
                       dist, str(dev))
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=0.0)
    sched = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup)
    val_idx = (torch.tensor(eval_indices(val, min(256, len(val)), cfg.seed))
               if val is not None else None)
    history: list[dict[str, Any]] = []
    if val is not None and dist.is_main:
        history.append({"step": 0, **heldout_metrics(teacher, val, lang_val, val_idx)})
    student.train()
    bar = tqdm(range(cfg.steps), disable=not (progress and dist.is_main), desc="distill",
               dynamic_ncols=True)
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        pick = torch.randint(len(traj["index"]), (cfg.batch_size,), generator=g)
        items = traj["index"][pick]
        obs, actions, _ = train.batch(items, lang, student.config.image_size,
                                      shift=cfg.augment_shift, generator=g)
        gt_tokens = student.tokenizer.encode(actions.to(dev))
        states, n_iter = traj["states"][pick], traj["n_iter"][pick]
        if dist.enabled:  # this rank's slice (items weigh equally in the AR term)
            part = dist.shard(cfg.batch_size)
            obs, gt_tokens, states, n_iter = (take(obs, part), gt_tokens[part], states[part],
                                              n_iter[part])
            g = torch.Generator().manual_seed(
                int(torch.randint(2**62, (1,), generator=g)) + dist.rank)
        loss, m = loss_module(obs, gt_tokens, states, n_iter, g)
        if dist.enabled:
            weight = len(n_iter) / cfg.batch_size
            loss, m = loss * (weight * dist.world_size), dist.reduce_metrics(m, weight)
        for group in opt.param_groups:
            group["lr"] = sched.lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        opt.step()
        bar.set_postfix({k: f"{v:.3f}" for k, v in m.items()})
        if dist.is_main and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            entry = {"step": step + 1, **{f"train_{k}": v for k, v in m.items()}}
            if val is not None:
                entry.update(heldout_metrics(student, val, lang_val, val_idx))
                student.train()
            history.append(entry)
            bar.write(" ".join(f"{k}={v:.4g}" for k, v in entry.items()))
    student.eval()
    if not dist.is_main:
        return {}
    tmp = Path(tempfile.mkdtemp(prefix="distill-"))
    traj_file = tmp / "trajectories.safetensors"
    save_file({k: v.contiguous() for k, v in traj.items()}, str(traj_file))
    if cfg.teacher_mix > 0:
        mix_weights(student, teacher, cfg.teacher_mix)
        if val is not None:
            history.append({"step": cfg.steps, "teacher_mix": cfg.teacher_mix,
                            **heldout_metrics(student, val, lang_val, val_idx)})
    summary: dict[str, Any] = {"config": asdict(cfg), "history": history,
                               "teacher_mean_passes_train": float(traj["n_iter"].float().mean())}
    if val is not None:
        idx = eval_indices(val, cfg.n_eval, cfg.seed)
        ar = action_error(teacher, val, idx, decoder="ar")
        summary["ar_baseline"] = ar
        summary["teacher_sweep"] = sweep_early_exit(teacher, val, idx, ar["l1"])
        summary["student_sweep"] = sweep_early_exit(student, val, idx, ar["l1"])
    ee_file = tmp / "early_exit.json"
    ee_file.write_text(json.dumps(summary, indent=2))
    save_pretrained(student, out, train_meta={"step": cfg.steps, "distill": asdict(cfg),
                                              "history": history},
                    extra_files={"trajectories.safetensors": traj_file,
                                 "early_exit.json": ee_file})
    return summary


def distill_from_dirs(teacher_dir: Path, data: Path, out: Path, cfg: DistillConfig, *,
                      device: str = "cpu", val_fraction: float = 0.1,
                      instruction_cache: Path | None = None, data_cache: Path | None = None,
                      progress: bool = True, dist: DistContext = SINGLE) -> dict[str, Any]:
    """Load the teacher and the dataset (same split seed as training), then :func:`distill`."""
    from vla.distributed import main_first
    from vla.pipeline import open_instruction_cache

    teacher = from_pretrained(teacher_dir).to(device)
    if teacher.config.head != "ar":
        raise ValueError(f"teacher must be an 'ar' checkpoint, {teacher_dir} is "
                         f"{teacher.config.head!r}")
    meta_file = Path(teacher_dir) / "train_state.json"
    split_seed = json.loads(meta_file.read_text())["train"]["seed"] if meta_file.is_file() \
        else cfg.seed
    c = teacher.config
    with main_first(dist):  # rank 0 writes the caches, the others then read them
        split = load_split(data, c.horizon, c.cameras, c.image_size, val_fraction=val_fraction,
                           seed=split_seed, cache_dir=data_cache)
        texts = split.train.instructions + (split.val.instructions if split.val else [])
        missing = [t for t in texts if t not in teacher.instructions]
        if missing:
            shared = open_instruction_cache(instruction_cache, missing,
                                            teacher.config.lang_cache_tokens)
            for t in missing:
                teacher.instructions.put(t, shared.embed([t])[0])
    summary = distill(teacher, split.train, split.val, cfg, Path(out), progress=progress,
                      dist=dist)
    brief = {k: v for k, v in summary.items() if k not in ("teacher_sweep", "student_sweep")}
    for who in ("teacher_sweep", "student_sweep"):
        if who in summary:
            s = summary[who]
            chosen = next(c for c in s["curve"] if c["name"] == s["chosen"])
            brief[who] = {"chosen": s["chosen"], "nfe": chosen["nfe"], "l1": chosen["l1"],
                          "within_budget": s["within_budget"]}
    return brief


def load_trajectories(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The trajectories stored in a distilled checkpoint folder."""
    return read_tensors(Path(checkpoint) / "trajectories.safetensors")
