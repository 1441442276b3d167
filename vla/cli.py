"""Commands of ``vla`` for the ``robodecode`` CLI: train, distill, info.

Usage: robodecode train --head ar --data scratch/vla/data/pickplace200 --out scratch/vla/ckpt/ar
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from decoding.threads import DEFAULT_CPU_THREADS
from vla.config import parse_overrides

SCRATCH = Path("scratch/vla")
DEFAULT_INSTRUCTION_CACHE = SCRATCH / "instructions.safetensors"
DEFAULT_DATA_CACHE = SCRATCH / "chunks"


def _torch_setup(threads: int, device: str):
    import torch

    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter(f"device {device!r} requested but CUDA is not available")
    return torch


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this package's commands to the top-level app (``bench vla`` lives in experiments)."""

    @app.command("train")
    def train_cmd(
        head: Annotated[str, typer.Option(help="ar | diffusion | flow | oft")],
        data: Annotated[Path, typer.Option(help="LeRobot v3 dataset folder")],
        out: Annotated[Path, typer.Option(help="checkpoint folder (resumed if it holds a run)")],
        steps: int = 3000,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
        preset: Annotated[str, typer.Option(help="model size: cpu | gpu | tiny")] = "cpu",
        horizon: int = 8,
        cameras: Annotated[str, typer.Option(help="comma-separated camera keys")] = "image",
        ema: Annotated[float, typer.Option(help="EMA decay of exported weights, 0 = off")] = 0.0,
        warmup: int = 100,
        augment_shift: Annotated[int, typer.Option(
            help="random-shift image augmentation, pixels (0 = off)")] = 4,
        val_fraction: float = 0.1,
        eval_every: int = 250,
        threads: int = DEFAULT_CPU_THREADS,
        resume: bool = True,
        instruction_cache: Path = DEFAULT_INSTRUCTION_CACHE,
        data_cache: Path = DEFAULT_DATA_CACHE,
        progress: bool = True,
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="VLAConfig field override KEY=VALUE (JSON value), repeatable, e.g. "
                          "--set lang_features='\"tokens\"' --set lang_tokens=16")] = None,
    ) -> None:
        """Train one action head on a LeRobot v3 dataset (held-out episodes for validation).

        Under ``torchrun --nproc_per_node N`` it trains data-parallel (DDP, NCCL on CUDA, gloo
        on CPU); ``--batch-size`` stays the global batch and rank 0 writes the checkpoint.
        """
        from vla import distributed
        from vla.pipeline import train_head

        _torch_setup(threads, device)
        dist, device = distributed.setup(device)
        summary = train_head(head=head, data=data, out=out, steps=steps, batch_size=batch_size,
                             lr=lr, seed=seed, device=device, preset_name=preset,
                             horizon=horizon, ema=ema, warmup=warmup, val_fraction=val_fraction,
                             augment_shift=augment_shift,
                             eval_every=eval_every, resume=resume,
                             instruction_cache=instruction_cache, data_cache=data_cache,
                             progress=progress, config_overrides={
                                 "cameras": tuple(c.strip() for c in cameras.split(",")),
                                 **parse_overrides(set_ or [])}, dist=dist)
        distributed.teardown(dist)
        if dist.is_main:
            typer.echo(json.dumps(summary, indent=2))

    @app.command("distill")
    def distill_cmd(
        teacher: Annotated[Path, typer.Option(help="AR-head checkpoint folder")],
        data: Annotated[Path, typer.Option(help="the teacher's LeRobot v3 dataset folder")],
        out: Annotated[Path, typer.Option(help="student checkpoint folder")],
        steps: int = 1500,
        batch_size: int = 64,
        lr: float = 3e-4,
        n_trajectories: Annotated[int, typer.Option(help="training observations")] = 2048,
        ar_weight: float = 10.0,
        gt_label_prob: Annotated[float, typer.Option(
            help="share of ground-truth labels in the mixed AR loss")] = 0.5,
        seed: int = 0,
        device: str = "cpu",
        threads: int = DEFAULT_CPU_THREADS,
        val_fraction: float = 0.1,
        eval_every: int = 250,
        n_eval: Annotated[int, typer.Option(help="held-out observations for the EE sweep")] = 256,
        keep_input_noise: Annotated[bool, typer.Option(
            help="corrupt the AR term's inputs with the teacher's ar_input_noise")] = False,
        augment_shift: Annotated[int, typer.Option(
            help="random-shift image augmentation in pixels (0: off)")] = 0,
        teacher_mix: Annotated[float, typer.Option(
            help="after training, move the student this far back towards the teacher "
                 "(WiSE-FT; the shipped student: 0.5)")] = 0.0,
        instruction_cache: Path = DEFAULT_INSTRUCTION_CACHE,
        data_cache: Path = DEFAULT_DATA_CACHE,
        progress: bool = True,
    ) -> None:
        """Consistency-distill an AR checkpoint (CEED-VLA / CLLM) and pick its early exit.

        Runs data-parallel under ``torchrun`` like ``train`` (global ``--batch-size``).
        """
        from vla import distributed
        from vla.distill import DistillConfig, distill_from_dirs

        _torch_setup(threads, device)
        dist, device = distributed.setup(device)
        cfg = DistillConfig(steps=steps, batch_size=batch_size, lr=lr,
                            n_trajectories=n_trajectories, ar_weight=ar_weight,
                            gt_label_prob=gt_label_prob, seed=seed, eval_every=eval_every,
                            n_eval=n_eval, keep_input_noise=keep_input_noise,
                            augment_shift=augment_shift, teacher_mix=teacher_mix)
        summary = distill_from_dirs(teacher, data, out, cfg, device=device,
                                    val_fraction=val_fraction,
                                    instruction_cache=instruction_cache, data_cache=data_cache,
                                    progress=progress, dist=dist)
        distributed.teardown(dist)
        if dist.is_main:
            typer.echo(json.dumps(summary, indent=2))

    @app.command("info")
    def info_cmd(
        checkpoints: Annotated[list[Path] | None, typer.Argument(help="checkpoint folders")] = None,
        preset: str = "cpu",
        horizon: int = 8,
        action_dim: int = 4,
        state_dim: int = 7,
        add_instructions: Annotated[Path | None, typer.Option(
            help="text file, one instruction a line, embedded into each checkpoint's cache"
        )] = None,
    ) -> None:
        """Describe checkpoints (config, parameters, training) and count each head's parameters.

        The per-head table uses the first checkpoint's config (every head at that config), or
        the preset without one, so its count of the checkpoint's own head is the checkpoint's.
        """
        from vla.checkpoint import load_config
        from vla.config import preset as make_preset
        from vla.pipeline import describe_checkpoint, head_param_table

        _torch_setup(1, "cpu")
        first = next((p for p in _model_folders(checkpoints or [])), None)
        try:
            config = (load_config(first) if first is not None else make_preset(
                preset, horizon=horizon, action_dim=action_dim, state_dim=state_dim))
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        table = head_param_table(config)
        where = f"config of {first}" if first is not None else f"preset {preset!r}"
        typer.echo(f"parameters per head at the {where} (H={config.horizon}, "
                   f"D={config.action_dim}, S={config.state_dim}):")
        lo = min(table.values())
        for head, n in table.items():
            typer.echo(f"  {head:<10} {n:>12,d} params  ({100 * (n / lo - 1):+.1f}% vs smallest)")
        texts = None
        if add_instructions is not None:
            texts = [t.strip() for t in add_instructions.read_text().splitlines() if t.strip()]
        from vla.checkpoint import CheckpointError

        for model in _model_folders(checkpoints or []):
            try:
                described = describe_checkpoint(model, add_instructions=texts)
            except CheckpointError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(2) from None
            typer.echo(json.dumps(described, indent=2))


def _model_folders(checkpoints: list[Path]) -> list[Path]:
    """Model folders of the given paths: a checkpoint set (ar/, cjacobi/, ...) model by model."""
    from vla.checkpoint import CONFIG_FILE

    out = []
    for ckpt in checkpoints:
        out += ([ckpt] if (ckpt / CONFIG_FILE).is_file() or not ckpt.is_dir() else
                sorted(p for p in ckpt.iterdir() if (p / CONFIG_FILE).is_file()) or [ckpt])
    return out
