"""The checkpoint sets a comparison evaluates: demos collected, heads trained and distilled.

Usage: ``sets = ensure_checkpoints(cfg)`` -> ``{training seed: Path("<root>/seed<S>")}``

A checkpoint set holds one model folder per head (``ar/``, ``diffusion/``, ``flow/``, ``oft/``)
plus one per distilled student (``cjacobi/``); which folder a decoder reads is
:attr:`vla.decoders.DecoderSpec.checkpoint`. Only the folders the configured decoders need are
trained, teachers before their students. :func:`fingerprint` hashes a model's weights (it keys
the eval-run cache and ties GPU timings and the shipped set to exact weights).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from experiments.compare_config import (
    DEFAULT_DECODERS,
    SCRATCH,
    SHIPPED,
    CompareConfig,
    env_folder,
)
from vla.decoders import parse_decoder_spec
from vla.heads import HEADS

DISTILL_TEACHER_MIX = 0.5
"""``DistillConfig.teacher_mix`` of the shipped student (experiments/checkpoints/COMMANDS.md)."""


def needed_folders(decoders: tuple[str, ...]) -> tuple[str, ...]:
    """Model folders of a checkpoint set that ``decoders`` read, teachers before students.

    A distilled student (``spec.distilled``) also needs its head's folder: it is distilled
    from that teacher.
    """
    specs = [parse_decoder_spec(d) for d in decoders]
    heads = {s.head for s in specs}
    students = sorted({s.checkpoint for s in specs if s.distilled})
    return tuple(h for h in HEADS if h in heads) + tuple(students)


def dataset_dir(cfg: CompareConfig) -> Path:
    """Where the expert demos of ``cfg`` live (collected on first use)."""
    tag = (f"quick{cfg.demo_episodes}" if cfg.quick else
           f"demos{cfg.demo_episodes}-k{cfg.targets_per_layout}-s{cfg.demo_seed}")
    return SCRATCH / "data" / env_folder(cfg.env_id) / tag


def checkpoint_root(cfg: CompareConfig) -> Path:
    """Root holding ``seed<S>/`` checkpoint sets: explicit, else shipped, else scratch."""
    if cfg.checkpoints is not None:
        return Path(cfg.checkpoints)
    shipped = SHIPPED / env_folder(cfg.env_id)
    if not cfg.quick and not cfg.retrain and all(
            _complete(shipped / f"seed{s}") for s in cfg.train_seeds):
        return shipped
    return SCRATCH / "ckpt" / ("quick" if cfg.quick else cfg.preset) / env_folder(cfg.env_id)


def _complete(folder: Path) -> bool:
    """Whether ``folder`` holds every model the main comparison reads."""
    return all((folder / name / "model.safetensors").is_file()
               for name in needed_folders(DEFAULT_DECODERS))


def ensure_checkpoints(cfg: CompareConfig, log=print) -> dict[int, Path]:
    """Collect demos and train/distill what is missing; returns ``{seed: checkpoint set}``."""
    root = checkpoint_root(cfg)
    sets = {s: root / f"seed{s}" for s in cfg.train_seeds}
    needed = needed_folders(cfg.decoders)
    todo = {s: [n for n in needed if cfg.retrain or not (p / n / "model.safetensors").is_file()]
            for s, p in sets.items()}
    if not any(todo.values()):
        return sets
    data = dataset_dir(cfg)
    if not (data / "meta" / "info.json").is_file():
        from envs.lerobot_dataset import collect

        log(f"collecting {cfg.demo_episodes} expert demos into {data}")
        collect(cfg.env_id, cfg.demo_episodes, data, workers=min(2, cfg.workers),
                seed=cfg.demo_seed, targets_per_layout=cfg.targets_per_layout,
                progress=not cfg.quick)
    teachers = {s.checkpoint: s.head for s in map(parse_decoder_spec, cfg.decoders)
                if s.distilled}
    for seed, names in todo.items():
        for name in names:
            log(f"training {name} (seed {seed}) -> {sets[seed] / name}")
            _train(cfg, data, sets[seed], name, seed, teacher=teachers.get(name))
    return sets


def _seed_instruction_cache(path: Path) -> None:
    """Start the shared MiniLM cache from a shipped checkpoint's embeddings, if there is one.

    The embeddings are MiniLM's deterministic outputs; reusing them only spares loading the
    encoder (seconds) when every instruction is already embedded.
    """
    if path.exists():
        return
    shipped = sorted(SHIPPED.glob("*/seed*/ar/instructions.safetensors"))
    if shipped:
        import shutil

        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped[0], path)


def _train(cfg: CompareConfig, data: Path, folder: Path, name: str, seed: int,
           teacher: str | None = None) -> None:
    """Train head ``name`` into ``folder/name``, or distill it from ``folder/teacher``."""
    from vla.cli import DEFAULT_DATA_CACHE, DEFAULT_INSTRUCTION_CACHE

    _seed_instruction_cache(Path(DEFAULT_INSTRUCTION_CACHE))
    if teacher is not None:
        from vla.distill import DistillConfig, distill_from_dirs

        dcfg = DistillConfig(steps=cfg.distill_steps, batch_size=cfg.batch_size,
                             n_trajectories=cfg.n_trajectories, seed=seed,
                             teacher_mix=DISTILL_TEACHER_MIX,
                             eval_every=cfg.distill_steps if cfg.quick else 500,
                             n_eval=8 if cfg.quick else 256)
        distill_from_dirs(folder / teacher, data, folder / name, dcfg,
                          val_fraction=0.0 if cfg.quick else 0.1,
                          instruction_cache=DEFAULT_INSTRUCTION_CACHE,
                          data_cache=DEFAULT_DATA_CACHE, progress=not cfg.quick)
        return
    from vla.pipeline import train_head

    train_head(head=name, data=data, out=folder / name, steps=cfg.train_steps,
               batch_size=cfg.batch_size, seed=seed, preset_name=cfg.preset,
               warmup=min(200, cfg.train_steps // 10), ema=0.0 if cfg.quick else 0.999,
               val_fraction=0.0 if cfg.quick else 0.1,
               eval_every=max(1, min(1000, cfg.train_steps)), resume=not cfg.retrain,
               instruction_cache=DEFAULT_INSTRUCTION_CACHE, data_cache=DEFAULT_DATA_CACHE,
               progress=not cfg.quick, config_overrides=cfg.config_overrides)


def fingerprint(folder: Path) -> str:
    """Short content hash of a model folder's weights (keys the eval-run cache)."""
    return hashlib.sha1((folder / "model.safetensors").read_bytes()).hexdigest()[:12]


def models_of(sets: dict[int, Path], decoders: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``{training seed: {decoder: content hash}}`` of the checkpoints a comparison evaluates."""
    from policies.vla_policy import resolve_checkpoint

    return {str(s): {d: fingerprint(resolve_checkpoint(folder, d)) for d in decoders}
            for s, folder in sets.items()}
