"""The paradigm comparison: every action decoder on the same backbone, data, seeds and simulator.

Usage: robodecode compare [--env ID] [--out DIR] [--quick] [--retrain] [--episodes N]

Steps: collect expert demos if missing; train the four heads and consistency-distill the AR head
where no checkpoint set exists (``--retrain`` forces it); evaluate every decoder on the same env
seeds with train instructions, held-out instructions and in latency-aware mode, per training
seed; print the table and write ``compare.json``, ``compare.md`` and ``compare.png``.

Checkpoint sets live in ``<root>/seed<S>/{ar,diffusion,flow,oft,cjacobi}``; the shipped default
(``experiments/checkpoints/<Env>/``) is used when it holds the seed. Eval runs go to
``scratch/compare/runs/`` keyed by the checkpoint's content, so a rerun resumes them. Plain runs
and ``--quick`` write to ``scratch/compare/``; committed results only with an explicit ``--out``.

``--gpu-timing`` (on a machine with a CUDA GPU) only times every decoder's ``Policy.infer`` on
the first training seed's set, eager, and writes ``gpu_eager_timing.json`` into the results
folder; a later compare run there adds its ms as the ``gpu_eager_ms_per_chunk`` column for the
decoders whose checkpoint is unchanged (same content hash).
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_ENV = "robodecode/TabletopPickPlace-v0"
DEFAULT_DECODERS = ("ar", "jacobi", "jacobi+ee", "cjacobi+ee", "diffusion@2", "diffusion@4",
                    "diffusion@8", "flow@2", "flow@5", "flow@10", "oft")
QUICK_DECODERS = ("ar", "cjacobi+ee", "oft")
HEADS = ("ar", "diffusion", "flow", "oft")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "experiments" / "checkpoints"
COMMITTED = REPO / "experiments" / "results"
SCRATCH = Path("scratch") / "compare"
HELDOUT_SEED_OFFSET = 50_000
SEED_STRIDE = 100_000
CONDITIONS = ("train", "heldout", "latency")
GPU_TIMING = "gpu_eager_timing.json"
"""File in the results folder holding ``--gpu-timing``'s eager GPU ms per chunk."""
SHIPPED_RUN = "shipped"
"""Subfolder of a results folder holding a comparison of the shipped set alone (same env seeds);
a pooled table whose ``compare.json`` predates per-seed passes takes the shipped set's passes
from there."""
GROUNDING: dict[str, Any] = {"image_keypoints": 16, "lang_film_all": True, "state_dropout": 0.5,
                             "aux_target_weight": 1.0, "ar_input_noise": 0.8}
"""``VLAConfig`` switches of the shipped checkpoints (experiments/checkpoints/COMMANDS.md)."""
DISTILL_TEACHER_MIX = 0.5
"""``DistillConfig.teacher_mix`` of the shipped student (experiments/checkpoints/COMMANDS.md)."""


def env_folder(env_id: str) -> str:
    """Folder name of an env id without its namespace (``TabletopPickPlace-v0``)."""
    return env_id.split(":")[-1].split("/")[-1]


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
        conditions: Which of ``train``, ``heldout``, ``latency`` to evaluate (default all; a
            large paired run of a few decoders may take ``train`` alone).
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
    """

    env_id: str = DEFAULT_ENV
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
    conditions: tuple[str, ...] = CONDITIONS
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

    def __post_init__(self) -> None:
        from vla.decoders import parse_decoder_spec

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
        if self.jobs > 1 and self.workers == 1:  # workers=1 evaluates in this process
            raise ValueError("jobs > 1 needs workers >= 2: in-process evaluation (workers=1) "
                             "is not thread-safe")
        if self.out is None:
            self.out = SCRATCH / ("quick" if self.quick else "") / env_folder(self.env_id)
        self.out = Path(self.out)
        if self.quick and _inside(self.out, COMMITTED):
            raise ValueError(f"out={self.out}: --quick never writes committed results; drop --out")

    @classmethod
    def quick_settings(cls, **overrides: Any) -> CompareConfig:
        """The ``--quick`` smoke configuration (any field may still be overridden)."""
        base = {"quick": True, "decoders": QUICK_DECODERS, "episodes": 1, "workers": 1,
                "demo_episodes": 2, "targets_per_layout": 1, "demo_seed": 0, "preset": "tiny",
                "train_steps": 50, "batch_size": 8,
                "distill_steps": 10, "n_trajectories": 32, "videos": 0}
        return cls(**{**base, **overrides})


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------ data and checkpoints
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
    return all((folder / h / "model.safetensors").is_file() for h in (*HEADS, "cjacobi"))


def _needed(cfg: CompareConfig) -> tuple[str, ...]:
    from vla.decoders import parse_decoder_spec

    specs = [parse_decoder_spec(d) for d in cfg.decoders]
    heads = {s.head for s in specs} | ({"ar"} if any(s.distilled for s in specs) else set())
    return tuple(h for h in HEADS if h in heads) + (("cjacobi",) if any(
        s.distilled for s in specs) else ())


def ensure_checkpoints(cfg: CompareConfig, log=print) -> dict[int, Path]:
    """Collect demos and train/distill what is missing; returns ``{seed: checkpoint set}``."""
    root = checkpoint_root(cfg)
    sets = {s: root / f"seed{s}" for s in cfg.train_seeds}
    needed = _needed(cfg)
    todo = {s: [h for h in needed if cfg.retrain or not (p / h / "model.safetensors").is_file()]
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
    for seed, heads in todo.items():
        for head in heads:
            log(f"training {head} (seed {seed}) -> {sets[seed] / head}")
            _train(cfg, data, sets[seed], head, seed)
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


def _train(cfg: CompareConfig, data: Path, folder: Path, head: str, seed: int) -> None:
    from vla.cli import DEFAULT_DATA_CACHE, DEFAULT_INSTRUCTION_CACHE

    _seed_instruction_cache(Path(DEFAULT_INSTRUCTION_CACHE))
    if head == "cjacobi":
        from vla.distill import DistillConfig, distill_from_dirs

        dcfg = DistillConfig(steps=cfg.distill_steps, batch_size=cfg.batch_size,
                             n_trajectories=cfg.n_trajectories, seed=seed,
                             teacher_mix=DISTILL_TEACHER_MIX,
                             eval_every=cfg.distill_steps if cfg.quick else 500,
                             n_eval=8 if cfg.quick else 256)
        distill_from_dirs(folder / "ar", data, folder / "cjacobi", dcfg,
                          val_fraction=0.0 if cfg.quick else 0.1,
                          instruction_cache=DEFAULT_INSTRUCTION_CACHE,
                          data_cache=DEFAULT_DATA_CACHE, progress=not cfg.quick)
        return
    from vla.pipeline import train_head

    train_head(head=head, data=data, out=folder / head, steps=cfg.train_steps,
               batch_size=cfg.batch_size, seed=seed, preset_name=cfg.preset,
               warmup=min(200, cfg.train_steps // 10), ema=0.0 if cfg.quick else 0.999,
               val_fraction=0.0 if cfg.quick else 0.1,
               eval_every=max(1, min(1000, cfg.train_steps)), resume=not cfg.retrain,
               instruction_cache=DEFAULT_INSTRUCTION_CACHE, data_cache=DEFAULT_DATA_CACHE,
               progress=not cfg.quick, config_overrides=cfg.config_overrides)


def fingerprint(folder: Path) -> str:
    """Short content hash of a model folder's weights (keys the eval-run cache)."""
    return hashlib.sha1((folder / "model.safetensors").read_bytes()).hexdigest()[:12]


# ------------------------------------------------------------------------------- evaluation
def eval_plan(cfg: CompareConfig, sets: dict[int, Path]) -> list[tuple[str, str, int, Any]]:
    """Every eval run: ``(decoder, condition, training seed, EvalConfig)``."""
    from experiments.evaluate import EvalConfig

    plan = []
    for decoder in cfg.decoders:
        for seed, folder in sets.items():
            base = EvalConfig(policy=str(folder), env_id=cfg.env_id, decoder=decoder,
                              episodes=cfg.episodes, seed=cfg.seed + SEED_STRIDE * seed,
                              workers=cfg.workers, threads=cfg.threads, k=cfg.k)
            runs = {"train": base,
                    "heldout": replace(base, split="heldout",
                                       seed=base.seed + HELDOUT_SEED_OFFSET),
                    "latency": replace(base, latency=cfg.latency)}
            plan += [(decoder, c, seed, runs[c]) for c in cfg.conditions]
    return plan


def run_evals(cfg: CompareConfig, sets: dict[int, Path], log=print) -> dict[str, Any]:
    """Run (or resume) every eval; returns ``runs[decoder][condition][seed] = summary``."""
    from experiments.evaluate import evaluate
    from policies.vla_policy import resolve_checkpoint

    runs_root = SCRATCH / "runs" / env_folder(cfg.env_id)

    def one(item: tuple[str, str, int, Any]) -> tuple[str, str, int, dict[str, Any]]:
        decoder, cond, seed, ecfg = item
        model = fingerprint(resolve_checkpoint(sets[seed], decoder))
        out = runs_root / model / f"{decoder}-{cond}-s{ecfg.seed}-n{cfg.episodes}"
        summary = evaluate(ecfg, out, resume=True, progress=False)
        log(f"  {decoder:<12} {cond:<8} seed {seed}: {summary['pc_success']:5.1f}% "
            f"({summary['episodes']} ep, {summary['eval_s']:.0f} s)")
        return decoder, cond, seed, summary

    runs: dict[str, Any] = {d: {c: {} for c in ("train", "heldout", "latency")}
                            for d in cfg.decoders}
    plan = eval_plan(cfg, sets)
    with ThreadPoolExecutor(cfg.jobs) as pool:
        for decoder, cond, seed, summary in pool.map(one, plan):
            runs[decoder][cond][seed] = summary
    return runs


def chunk_timing(checkpoint_set: Path, decoders: tuple[str, ...], env_id: str = DEFAULT_ENV,
                 device: str = "cpu", calls: int = 30, warmup: int = 5,
                 rounds: int = 5) -> list[dict[str, Any]]:
    """Median ``Policy.infer`` ms per chunk of each decoder on real observations of ``env_id``.

    On a GPU this is the eager path (no static cache, no CUDA graph), synchronized per call.
    The decoders are timed in ``rounds`` interleaved rounds (each round times every decoder on
    the next ``calls / rounds`` observations, in a rotated order), so clock ramps and
    background jitter on the machine spread over all decoders instead of landing on one.

    Returns:
        One ``{"decoder", "ms_per_chunk", "ms_p10", "ms_p90", "nfe_per_chunk", "device",
        "calls"}`` dict per decoder.
    """
    import time

    import gymnasium as gym
    import numpy as np
    import torch

    import envs  # noqa: F401 - registers the ids
    from policies.vla_policy import VLAPolicy

    if calls < rounds or rounds < 1:
        raise ValueError(f"calls ({calls}) must be at least rounds ({rounds}) >= 1")
    env = gym.make(env_id)
    observations = [env.reset(seed=i)[0] for i in range(warmup + calls)]
    env.close()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    policies = {d: VLAPolicy(checkpoint_set, d, device=device) for d in decoders}
    for policy in policies.values():
        for obs in observations[:warmup]:
            policy.infer(obs)
    ms: dict[str, list[float]] = {d: [] for d in decoders}
    nfe: dict[str, list[float]] = {d: [] for d in decoders}
    batches = np.array_split(np.arange(warmup, warmup + calls), rounds)
    for r, batch in enumerate(batches):
        for decoder in decoders[r % len(decoders):] + decoders[:r % len(decoders)]:
            for i in batch:
                sync()
                tic = time.perf_counter()
                out = policies[decoder].infer(observations[i])
                sync()
                ms[decoder].append(1e3 * (time.perf_counter() - tic))
                nfe[decoder].append(out["nfe"])
    return [{"decoder": d, "ms_per_chunk": float(np.median(ms[d])),
             "ms_p10": float(np.percentile(ms[d], 10)), "ms_p90": float(np.percentile(ms[d], 90)),
             "nfe_per_chunk": float(np.mean(nfe[d])), "device": device, "calls": calls}
            for d in decoders]


def write_gpu_timing(cfg: CompareConfig, log=print, calls: int = 500,
                     rounds: int = 10) -> dict[str, Any]:
    """Time every decoder eagerly on this machine's GPU; write ``GPU_TIMING`` into ``cfg.out``.

    Uses the first training seed's checkpoint set as it exists (nothing is trained) and
    records each decoder's checkpoint hash, so :func:`merge_gpu_timing` can refuse stale
    numbers.
    """
    import torch

    from experiments.evaluate import check_env_id
    from experiments.provenance import provenance, write_json_atomic
    from policies.vla_policy import resolve_checkpoint

    check_env_id(cfg.env_id)
    if not torch.cuda.is_available():
        raise ValueError("--gpu-timing needs a CUDA GPU, and torch sees none on this machine")
    folder = checkpoint_root(cfg) / f"seed{cfg.train_seeds[0]}"
    missing = [h for h in _needed(cfg) if not (folder / h / "model.safetensors").is_file()]
    if missing:
        raise ValueError(f"--gpu-timing times existing checkpoints only; {folder} lacks "
                         f"{missing} (run compare or --retrain first)")
    log(f"timing {len(cfg.decoders)} decoders on {torch.cuda.get_device_name(0)} (eager)")
    rows = chunk_timing(folder, cfg.decoders, cfg.env_id, device="cuda", calls=calls,
                        rounds=rounds)
    for row in rows:
        row["model"] = fingerprint(resolve_checkpoint(folder, row["decoder"]))
    result = {"label": "eager GPU: batch 1, Policy.infer end to end, no static cache, no CUDA "
                       f"graph, synchronized per call; median of {calls} calls after 5 warm-up, "
                       f"decoders interleaved in {rounds} rounds; p10/p90 per row",
              "gpu": torch.cuda.get_device_name(0), "checkpoints": str(folder), "rows": rows,
              "command": cfg.command, "provenance": provenance(device="cuda")}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / GPU_TIMING, result)
    return result


def merge_gpu_timing(rows: list[dict[str, Any]], out: Path, models: dict[str, str],
                     log=print) -> dict[str, Any] | None:
    """Add ``gpu_eager_ms_per_chunk`` to ``rows`` from ``out/GPU_TIMING`` if it exists.

    Args:
        rows: ``compare.json`` rows, changed in place.
        out: The results folder.
        models: Decoder -> content hash of the checkpoint this comparison evaluated (first
            training seed); a timing of another checkpoint is left out (None).
        log: Where the left-out decoders are reported.

    Returns:
        ``{"file", "gpu", "label", "stale"}`` or None when there is no timing file.
    """
    import json

    path = Path(out) / GPU_TIMING
    if not path.is_file():
        return None
    timing = json.loads(path.read_text())
    measured = {r["decoder"]: r for r in timing["rows"]}
    stale = []
    for row in rows:
        t = measured.get(row["decoder"])
        fresh = t is not None and t.get("model") == models.get(row["decoder"])
        if t is not None and not fresh:
            stale.append(row["decoder"])
        row["gpu_eager_ms_per_chunk"] = t["ms_per_chunk"] if fresh else None
    if stale:
        log(f"{path}: left out GPU timings of other checkpoints for {stale}")
    return {"file": GPU_TIMING, "gpu": timing["gpu"], "label": timing["label"], "stale": stale}


# ------------------------------------------------------------------------- the shipped set
def models_of(sets: dict[int, Path], decoders: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``{training seed: {decoder: content hash}}`` of the checkpoints a comparison evaluates."""
    from policies.vla_policy import resolve_checkpoint

    return {str(s): {d: fingerprint(resolve_checkpoint(folder, d)) for d in decoders}
            for s, folder in sets.items()}


def _display(path: Path) -> str:
    return str(path.relative_to(REPO)) if _inside(path, REPO) else str(path)


def shipped_folder(env_id: str, seed: int) -> Path:
    """Where the shipped checkpoint set of training seed ``seed`` lives (it may not exist)."""
    return SHIPPED / env_folder(env_id) / f"seed{seed}"


def shipped_seed(env_id: str, models: dict[str, dict[str, str]]) -> int | None:
    """The training seed whose checkpoints are, weight for weight, the shipped set (or None)."""
    from policies.vla_policy import resolve_checkpoint

    for seed, by_decoder in sorted(models.items(), key=lambda x: int(x[0])):
        folder = shipped_folder(env_id, int(seed))
        if not by_decoder or not folder.is_dir():
            continue
        try:
            same = all(fingerprint(resolve_checkpoint(folder, d)) == h
                       for d, h in by_decoder.items())
        except (ValueError, OSError):
            same = False
        if same:
            return int(seed)
    return None


def recorded_models(result: dict[str, Any], out: Path) -> dict[str, dict[str, str]]:
    """Content hashes of a ``compare.json``'s checkpoints, also for files that predate them.

    Newer files record ``models``. For older ones: the checkpoint folders that still exist are
    hashed, and the first training seed's hashes come from the results folder's
    ``GPU_TIMING`` file when that timing was merged into every row (``merge_gpu_timing`` merges
    a decoder only when its hash equals the evaluated checkpoint's).
    """
    if result.get("models"):
        return result["models"]
    decoders = [r["decoder"] for r in result["rows"]]
    models: dict[str, dict[str, str]] = {}
    for seed, folder in (result.get("checkpoints") or {}).items():
        path = Path(folder) if Path(folder).is_absolute() else REPO / folder
        if path.is_dir():
            models[seed] = models_of({int(seed): path}, tuple(decoders))[seed]
    first = str(result["seeds"]["train"][0])
    timing, path = result.get("gpu_timing"), Path(out) / GPU_TIMING
    if (first not in models and timing and not timing.get("stale") and path.is_file()
            and all(r.get("gpu_eager_ms_per_chunk") is not None for r in result["rows"])):
        import json

        timed = {r["decoder"]: r.get("model") for r in json.loads(path.read_text())["rows"]}
        if all(timed.get(d) for d in decoders):
            models[first] = {d: timed[d] for d in decoders}
    return models


def attach_shipped(result: dict[str, Any], out: Path, log=print) -> None:
    """Set ``result["shipped"]``: the shipped set's own rows, or None if no seed ships.

    A ``SHIPPED_RUN/compare.json`` beside the results (the shipped set alone, on the same env
    seeds) supplies the shipped set's passes per chunk when ``result`` lacks per-seed passes,
    and its episode-by-episode agreement with ``result`` is recorded.
    """
    import json

    from experiments.compare_report import shipped_section

    models = recorded_models(result, out)
    seed = shipped_seed(result["env_id"], models)
    if seed is None:
        result["shipped"] = None
        return
    rerun, rerun_file = None, f"{SHIPPED_RUN}/compare.json"
    path = Path(out) / rerun_file
    if path.is_file() and len(result["seeds"]["train"]) > 1:
        candidate = json.loads(path.read_text())
        first = candidate.get("seeds", {}).get("env_first", {}).get(str(seed))
        if (candidate.get("seeds", {}).get("train") == [seed]
                and first == result["seeds"]["env_first"].get(str(seed))
                and shipped_seed(candidate["env_id"],
                                 recorded_models(candidate, path.parent)) == seed):
            rerun = candidate
        else:
            log(f"{path}: not a run of the shipped set (training seed {seed}) on the same env "
                "seeds; left out")
    result["shipped"] = shipped_section(result, seed, _display(shipped_folder(result["env_id"],
                                                                             seed)),
                                        rerun=rerun, rerun_file=rerun_file if rerun else None)


def rebuild_report(out: Path, command: str, log=print) -> dict[str, Any]:
    """Rebuild ``compare.json``'s derived parts, ``compare.md`` and ``compare.png`` in ``out``.

    Evaluates nothing: the paired tests are recomputed from the recorded episodes and the
    shipped set's own rows are attached (:func:`attach_shipped`). The run's command and
    provenance stay; ``report_command`` records this rebuild.
    """
    import json

    from experiments.compare_report import (
        fill_heldout_ci,
        headline,
        plot,
        runs_from_episodes,
        write_markdown,
    )
    from experiments.provenance import write_json_atomic

    path = Path(out) / "compare.json"
    if not path.is_file():
        raise ValueError(f"--report-only rebuilds an existing {path}, and there is none")
    result = json.loads(path.read_text())
    fill_heldout_ci(result)
    result["headline"] = headline(result["rows"], runs_from_episodes(result))
    attach_shipped(result, Path(out), log=log)
    result["report_command"] = command
    plot(result, Path(out) / result.get("plot", "compare.png"))
    write_json_atomic(path, result)
    write_markdown(result, Path(out) / "compare.md")
    return result


# ----------------------------------------------------------------------------------- results
def compare(cfg: CompareConfig, log=print) -> dict[str, Any]:
    """Run the whole comparison and write its files; returns the ``compare.json`` object."""
    from experiments.compare_report import decoder_row, headline, plot, write_markdown
    from experiments.evaluate import check_env_id
    from experiments.provenance import provenance, write_json_atomic
    from policies.vla_policy import resolve_checkpoint

    check_env_id(cfg.env_id)
    sets = ensure_checkpoints(cfg, log=log)
    log(f"evaluating {len(cfg.decoders)} decoders x {len(sets)} training seed(s) x "
        f"{len(cfg.conditions)} conditions x {cfg.episodes} episodes")
    runs = run_evals(cfg, sets, log=log)
    rows = [decoder_row(d, runs[d]) for d in cfg.decoders]
    ks = {r["k"] for r in rows}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    first = cfg.train_seeds[0]
    models = {d: fingerprint(resolve_checkpoint(sets[first], d)) for d in cfg.decoders}
    gpu_timing = merge_gpu_timing(rows, out, models, log=log)
    videos = []
    if cfg.videos:
        from experiments.compare_videos import write_videos

        log(f"rollout videos: {cfg.videos} episode(s), every decoder side by side")
        videos = write_videos(cfg, sets, runs, out, log=log)
    result = {
        "env_id": cfg.env_id,
        "rows": rows,
        "gpu_timing": gpu_timing,
        "headline": headline(rows, runs),
        "k": ks.pop() if len(ks) == 1 else sorted(ks, key=str),
        "episodes_per_seed": cfg.episodes,
        "latency": cfg.latency,
        "conditions": list(cfg.conditions),
        "seeds": {"train": list(cfg.train_seeds),
                  "env_first": {str(s): cfg.seed + SEED_STRIDE * s for s in cfg.train_seeds},
                  "heldout_offset": HELDOUT_SEED_OFFSET,
                  "describe": (f"{cfg.seed} + {SEED_STRIDE} x training seed + i (train and "
                               f"latency-aware), + {HELDOUT_SEED_OFFSET} more for held-out")},
        "checkpoints": {str(s): str(p) for s, p in sets.items()},
        "models": models_of(sets, cfg.decoders),
        "episodes": {d: {c: {str(s): [[e["seed"], int(bool(e["success"]))]
                                      for e in r["per_episode"]] for s, r in by.items()}
                         for c, by in runs[d].items()} for d in cfg.decoders},
        "plot": "compare.png",
        "videos": videos,
        "quick": cfg.quick,
        "command": cfg.command,
        "provenance": provenance(torch_threads=cfg.threads, workers=cfg.workers,
                                 jobs=cfg.jobs),
    }
    attach_shipped(result, out, log=log)
    plot(result, out / "compare.png")
    write_json_atomic(out / "compare.json", result)
    write_markdown(result, out / "compare.md")
    return result


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``robodecode compare`` to the top-level app."""

    @app.command("compare")
    def compare_command(
        env: Annotated[str, typer.Option(help="Gymnasium env id.")] = DEFAULT_ENV,
        out: Annotated[Path | None, typer.Option(
            help="Results folder (default scratch/compare/<Env>; committed results only "
                 "with an explicit experiments/results/<Env>).")] = None,
        quick: Annotated[bool, typer.Option(help="Smoke run: tiny model, ~50 steps, 3 "
                                            "decoders, 1 episode.")] = False,
        retrain: Annotated[bool, typer.Option(help="Train every checkpoint set anew.")] = False,
        episodes: Annotated[int | None, typer.Option(
            help="Episodes per training seed and condition (default 10; quick 1).")] = None,
        train_seeds: Annotated[list[int] | None, typer.Option(
            "--train-seeds", help="Training seeds (repeat the option); default 0.")] = None,
        decoders: Annotated[list[str] | None, typer.Option(
            "--decoders", help="Decoder specs (repeat the option); default: all.")] = None,
        workers: Annotated[int | None, typer.Option(help="Env workers per eval run.")] = None,
        jobs: Annotated[int, typer.Option(help="Eval runs at the same time.")] = 1,
        k: Annotated[int | None, typer.Option(
            help="Actions executed per chunk (default: the whole chunk).")] = None,
        latency: Annotated[str, typer.Option(
            help="Latency-aware runs: 'measured' or milliseconds.")] = "measured",
        checkpoints: Annotated[Path | None, typer.Option(
            help="Root of seed<S>/ checkpoint sets (default: shipped, else scratch).")] = None,
        seed: Annotated[int, typer.Option(help="First env seed.")] = 1000,
        conditions: Annotated[list[str] | None, typer.Option(
            "--conditions", help="train, heldout, latency (repeat the option); default all.")
        ] = None,
        videos: Annotated[int | None, typer.Option(
            help="Train episodes replayed into side-by-side rollout videos (default 2; quick "
                 "0).")] = None,
        gpu_timing: Annotated[bool, typer.Option(
            "--gpu-timing", help=f"Only time every decoder eagerly on this machine's CUDA GPU "
            f"(first training seed's set) into OUT/{GPU_TIMING}; the next compare run there "
            "adds it as a column.")] = False,
        report_only: Annotated[bool, typer.Option(
            "--report-only", help="Only rebuild OUT's compare.md/.png and the derived parts of "
            "its compare.json (paired tests, the shipped set's own rows, passes from "
            f"OUT/{SHIPPED_RUN}/compare.json where needed); evaluates nothing.")] = False,
    ) -> None:
        """Compare every action decoder (success, passes, ms, Hz, latency-aware) on one task."""
        from experiments.compare_report import print_table

        if report_only:
            if out is None:
                typer.echo("error: --report-only needs --out (the results folder)", err=True)
                raise typer.Exit(2)
            try:
                result = rebuild_report(out, shlex.join(["robodecode", *sys.argv[1:]]),
                                        log=lambda m: typer.echo(m, err=True))
            except ValueError as err:
                typer.echo(f"error: {str(err).splitlines()[0]}", err=True)
                raise typer.Exit(2) from None
            print_table(result)
            typer.echo(f"wrote {Path(out) / 'compare.md'}")
            return

        given = {"env_id": env, "out": out, "retrain": retrain, "jobs": jobs, "k": k,
                 "latency": latency, "checkpoints": checkpoints, "seed": seed}
        for name, value in (("episodes", episodes), ("workers", workers), ("videos", videos)):
            if value is not None:
                given[name] = value
        if train_seeds:
            given["train_seeds"] = tuple(train_seeds)
        if decoders:
            given["decoders"] = tuple(decoders)
        if conditions:
            given["conditions"] = tuple(conditions)
        try:
            cfg = (CompareConfig.quick_settings(**given) if quick else CompareConfig(**given))
            if gpu_timing:
                timing = write_gpu_timing(cfg, log=lambda m: typer.echo(m, err=True))
                for row in timing["rows"]:
                    typer.echo(f"{row['decoder']:<14} {row['ms_per_chunk']:8.2f} ms/chunk "
                               f"({row['nfe_per_chunk']:.2f} passes, {timing['gpu']}, eager)")
                typer.echo(f"wrote {Path(cfg.out) / GPU_TIMING}")
                return
            result = compare(cfg, log=lambda m: typer.echo(m, err=True))
        except ValueError as err:
            typer.echo(f"error: {str(err).splitlines()[0]}", err=True)
            raise typer.Exit(2) from None
        print_table(result)
        typer.echo(f"wrote {Path(cfg.out) / 'compare.json'}")
