"""What ``robodecode compare`` trains and evaluates: :class:`CompareConfig` and its constants.

Usage: ``cfg = CompareConfig(decoders=("ar", "oft"), episodes=3)``;
``cfg = CompareConfig.quick_settings()``

The folders a comparison reads and writes (shipped checkpoints, committed results, scratch), the
env-seed layout (``seed + SEED_STRIDE * training seed + i``, held-out ``+ HELDOUT_SEED_OFFSET``)
and the file names inside a results folder live here, so every part of the comparison agrees.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.ids import DEFAULT_ENV_ID
from vla.decoders import COMPARISON_DECODERS, QUICK_DECODERS, parse_decoder_spec

DEFAULT_DECODERS = tuple(str(spec) for spec in COMPARISON_DECODERS)
"""The decoders of the main comparison, as labels (:data:`vla.decoders.COMPARISON_DECODERS`)."""
QUICK = tuple(str(spec) for spec in QUICK_DECODERS)
"""The decoders of ``--quick``, as labels (:data:`vla.decoders.QUICK_DECODERS`)."""
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "experiments" / "checkpoints"
COMMITTED = REPO / "experiments" / "results"
SCRATCH = Path("scratch") / "compare"
HELDOUT_SEED_OFFSET = 50_000
SEED_STRIDE = 100_000
CONDITIONS = ("train", "heldout", "latency", "rtc")
"""Every condition a comparison can run; ``rtc`` is latency-aware with real-time chunking."""
DEFAULT_CONDITIONS = ("train", "heldout", "latency")
"""What a comparison runs unless ``--conditions`` says otherwise."""
GPU_TIMING = "gpu_eager_timing.json"
"""File in the results folder holding ``--gpu-timing``'s eager GPU ms per chunk."""
SHIPPED_RUN = "shipped"
"""Subfolder of a results folder holding a comparison of the shipped set alone (same env seeds);
a pooled table whose ``compare.json`` predates per-seed passes takes the shipped set's passes
from there."""
GROUNDING: dict[str, Any] = {"image_keypoints": 16, "lang_film_all": True, "state_dropout": 0.5,
                             "aux_target_weight": 1.0, "ar_input_noise": 0.8}
"""``VLAConfig`` switches of the shipped checkpoints (experiments/checkpoints/COMMANDS.md)."""


def env_folder(env_id: str) -> str:
    """Folder name of an env id without its namespace (``TabletopPickPlace-v0``)."""
    return env_id.split(":")[-1].split("/")[-1]


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root`` (both resolved)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def display(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (for labels in reports)."""
    return str(path.relative_to(REPO)) if inside(path, REPO) else str(path)


@dataclass
class CompareConfig:
    """What ``robodecode compare`` trains and evaluates.

    Attributes:
        env_id: Gymnasium id of the task.
        out: Folder for ``compare.json``/``.md``/``.png``.
        decoders: Decoder specs, one table row each.
        train_seeds: Training seeds (one checkpoint set each); success pools over them.
        episodes: Episodes per training seed and condition.
        seed: First env seed; training seed ``t`` evaluates env seeds ``seed + t*100000 + i``.
        workers: Env worker processes per eval run (spawn).
        jobs: Eval runs executed at the same time.
        threads: Torch threads per worker.
        k: Actions executed per chunk (``None``: the whole chunk).
        latency: Latency of the latency-aware runs: ``measured`` or milliseconds.
        conditions: Which of ``train``, ``heldout``, ``latency``, ``rtc`` to evaluate (default
            the first three; ``rtc`` is the latency-aware run with real-time chunking; a large
            paired run of a few decoders may take ``train`` alone).
        checkpoints: Root of the checkpoint sets (``None``: shipped, else scratch).
        retrain: Train every set again even if one exists.
        quick: Smoke settings: tiny model, ~50 steps, a tiny dataset.
        demo_episodes: Expert demos to collect when the dataset is missing.
        targets_per_layout: Demos per scene layout, each under another target (counterfactual
            demos; the shipped set used 4).
        demo_seed: First layout seed of the collected demos.
        preset: Model size of newly trained heads.
        config_overrides: ``VLAConfig`` switches of newly trained heads (default: the
            grounding recipe the shipped set was trained with, ``GROUNDING``).
        train_steps: Training steps per head.
        batch_size: Training batch size.
        distill_steps: Consistency-distillation steps.
        n_trajectories: Jacobi trajectories collected for distillation.
        videos: Train episodes (first training seed) replayed into side-by-side rollout
            videos, every decoder in one mp4 per env seed (0: none).
        command: The command line recorded in the results.
        ray: Run every eval's episodes on Ray actors (``workers`` per run), one cluster for
            the whole comparison (:mod:`experiments.ray_eval`).
        address: With ``ray``: join this cluster (``auto`` or host:port); ``None`` starts a
            local one for the comparison.
    """

    env_id: str = DEFAULT_ENV_ID
    out: Path | None = None
    decoders: tuple[str, ...] = DEFAULT_DECODERS
    train_seeds: tuple[int, ...] = (0,)
    episodes: int = 10
    seed: int = 1000
    workers: int = 2
    jobs: int = 1
    threads: int = 1
    k: int | None = None
    latency: str = "measured"
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    checkpoints: Path | None = None
    retrain: bool = False
    quick: bool = False
    demo_episodes: int = 4000
    targets_per_layout: int = 4
    demo_seed: int = 1_000_000
    preset: str = "cpu"
    config_overrides: dict[str, Any] = field(default_factory=lambda: dict(GROUNDING))
    train_steps: int = 12000
    batch_size: int = 128
    distill_steps: int = 1500
    n_trajectories: int = 4096
    videos: int = 2
    command: str = field(default_factory=lambda: shlex.join(["robodecode", *sys.argv[1:]]))
    ray: bool = False
    address: str | None = None

    def __post_init__(self) -> None:
        self.decoders = tuple(str(parse_decoder_spec(d)) for d in self.decoders)
        if len(set(self.decoders)) != len(self.decoders):
            raise ValueError(f"decoders must be distinct, got {list(self.decoders)}")
        for name in ("episodes", "workers", "jobs", "threads", "demo_episodes", "train_steps",
                     "batch_size", "distill_steps", "n_trajectories"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.train_seeds or len(set(self.train_seeds)) != len(self.train_seeds):
            raise ValueError(f"train_seeds must be distinct and non-empty, got {self.train_seeds}")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not isinstance(self.videos, int) or not 0 <= self.videos <= self.episodes:
            raise ValueError(f"videos must be an int in [0, episodes={self.episodes}], got "
                             f"{self.videos!r}")
        self.conditions = tuple(dict.fromkeys(self.conditions))
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions:
            raise ValueError(f"conditions must be drawn from {CONDITIONS}, got "
                             f"{list(self.conditions)}")
        if "train" not in self.conditions:
            raise ValueError("conditions must include 'train' (the table's pc_success)")
        if self.address is not None and not self.ray:
            raise ValueError("address applies only with ray (--ray)")
        if self.jobs > 1 and self.workers == 1 and not self.ray:  # workers=1: in this process
            raise ValueError("jobs > 1 needs workers >= 2: in-process evaluation (workers=1) "
                             "is not thread-safe")
        if self.out is None:
            self.out = SCRATCH / ("quick" if self.quick else "") / env_folder(self.env_id)
        self.out = Path(self.out)
        if self.quick and inside(self.out, COMMITTED):
            raise ValueError(f"out={self.out}: --quick never writes committed results; drop --out")

    @classmethod
    def quick_settings(cls, **overrides: Any) -> CompareConfig:
        """The ``--quick`` smoke configuration (any field may still be overridden)."""
        base = {"quick": True, "decoders": QUICK, "episodes": 1, "workers": 1,
                "demo_episodes": 2, "targets_per_layout": 1, "demo_seed": 0, "preset": "tiny",
                "train_steps": 50, "batch_size": 8,
                "distill_steps": 10, "n_trajectories": 32, "videos": 0}
        return cls(**{**base, **overrides})

    def env_seed(self, train_seed: int) -> int:
        """First env seed of training seed ``train_seed``'s train and latency-aware runs."""
        return self.seed + SEED_STRIDE * train_seed
