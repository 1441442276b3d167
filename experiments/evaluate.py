"""Success-rate evaluation: N seeded episodes in parallel workers, resumable, with a summary.

Usage: robodecode eval --policy expert --env robodecode/TabletopPickPlace-v0 --episodes 50

Episode ``i`` uses seed ``seed + i``. Every finished episode is appended as one JSON line to
``episodes.jsonl`` (a single ``write`` + ``fsync``), so a crash loses at most the episodes in
flight and ``resume=True`` skips every episode already recorded. The summary ``eval_info.json``
carries LeRobot's keys (``pc_success``, ``avg_sum_reward``, ``avg_max_reward``, ``eval_s``,
``per_episode``) plus the 95% Wilson interval, passes and ms per chunk, Hz and provenance.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from envs.ids import DEFAULT_ENV_ID, check_env_id
from envs.workers import worker_pool
from experiments.eval_summary import summarize, write_video
from experiments.provenance import machine

EPISODES_FILE = "episodes.jsonl"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "eval_info.json"
BUILTIN_POLICIES = ("expert", "random")
# Fields that must match for --resume to continue a run (the rest may change between calls).
_RUN_IDENTITY = ("policy", "decoder", "env_id", "seed", "split", "latency", "k",
                 "ensemble_decay", "max_steps", "expert_noise", "rtc")


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Attributes:
        policy: ``expert``, ``random``, a VLA checkpoint folder, or ``module:factory`` where
            ``factory(env)`` returns a :class:`~policies.base.Policy`.
        env_id: A registered gymnasium id (``module:id`` imports ``module`` first).
        decoder: Decoder spec (``ar``, ``cjacobi+ee``, ``flow@10``, ...); checkpoints only.
        episodes: Number of episodes N; episode ``i`` uses seed ``seed + i``.
        seed: First seed S.
        split: Instruction split, ``train`` or ``heldout``.
        workers: Env worker processes (spawn); 1 runs in this process.
        threads: Torch threads per worker.
        videos: Record mp4 videos of the first ``videos`` episodes.
        latency: ``None``, ``"measured"`` or fixed milliseconds (latency-aware mode).
        k: Actions executed per chunk; ``None`` executes whole chunks.
        ensemble_decay: ACT temporal-ensembling rate; ``None`` disables ensembling.
        rtc: Real-time chunking: each request carries the actions that execute while it
            decodes, and the new chunk continues them (needs ``latency``).
        max_steps: Step cap per episode; ``None`` uses the env's time limit.
        expert_noise: Action noise of the expert policy.
        device: Torch device of a VLA policy (``cpu``, ``cuda``).
        fast: Decode on the fast path (static KV cache; CUDA graphs on CUDA); same answers.
    """

    policy: str
    env_id: str = DEFAULT_ENV_ID
    decoder: str | None = None
    episodes: int = 50
    seed: int = 0
    split: str = "train"
    workers: int = 1
    threads: int = 1
    videos: int = 0
    latency: str | float | None = None
    k: int | None = None
    ensemble_decay: float | None = None
    rtc: bool = False
    max_steps: int | None = None
    expert_noise: float = 0.0
    device: str = "cpu"
    fast: bool = False

    def __post_init__(self) -> None:
        for name in ("episodes", "workers", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.videos < 0:
            raise ValueError(f"videos must be >= 0, got {self.videos}")
        if self.split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {self.split!r}")
        self.latency = parse_latency(self.latency)
        if self.rtc and self.latency is None:
            raise ValueError("rtc needs a latency ('measured' or ms): without one nothing "
                             "executes while a chunk decodes")
        if self.rtc and self.ensemble_decay is not None:
            raise ValueError("rtc and ensemble_decay exclude each other")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.expert_noise < 0:
            raise ValueError(f"expert_noise must be >= 0, got {self.expert_noise}")


def parse_latency(value: str | float | None) -> str | float | None:
    """``None``/``"none"`` -> None, ``"measured"`` -> ``"measured"``, ``"120"`` -> 120.0 (ms).

    Raises:
        ValueError: For anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str) and value.strip().lower() == "measured":
        return "measured"
    try:
        ms = float(value)
    except (TypeError, ValueError):
        ms = float("nan")
    if not ms >= 0:
        raise ValueError(f"latency must be 'measured' or milliseconds >= 0, got {value!r}")
    return ms


def check_policy(config: EvalConfig) -> None:
    """Validate ``config.policy`` and ``config.decoder`` before any worker starts.

    Raises:
        ValueError: One line naming the valid choices.
    """
    from vla.decoders import parse_decoder_spec

    choices = "'expert', 'random', a checkpoint folder or module:factory"
    if config.policy in BUILTIN_POLICIES:
        if config.decoder is not None:
            raise ValueError(f"--decoder applies to checkpoints, not to the {config.policy} policy")
        return
    if Path(config.policy).exists():
        if config.decoder is None:
            raise ValueError("--decoder is required with a checkpoint (ar, cjacobi+ee, flow@10...)")
        parse_decoder_spec(config.decoder)
        from policies.vla_policy import check_checkpoint

        check_checkpoint(config.policy, config.decoder)
        return
    if ":" in config.policy:
        _load_factory(config.policy)
        return
    raise ValueError(f"policy {config.policy!r}: no such checkpoint path; use {choices}")


def _load_factory(text: str) -> Any:
    module, _, attr = text.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"policy factory {text!r} cannot be loaded: {err}") from None
    if not callable(factory):
        raise ValueError(f"policy factory {text!r} is not callable")
    return factory


def make_policy(config: EvalConfig, env: Any) -> Any:
    """Build the policy named by ``config.policy`` for ``env``."""
    from policies.base import ExpertPolicy, RandomPolicy

    if config.policy == "expert":
        return ExpertPolicy(env, noise=config.expert_noise)
    if config.policy == "random":
        return RandomPolicy(env.action_space, horizon=config.k or 1, seed=config.seed)
    if ":" in config.policy and not Path(config.policy).exists():
        return _load_factory(config.policy)(env)
    from policies.vla_policy import VLAPolicy

    return VLAPolicy(config.policy, config.decoder, device=config.device, fast=config.fast)


# ---------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _init_worker(config: dict[str, Any], out: str) -> None:
    """Per-process setup: headless MuJoCo, fixed torch threads, one env and one policy."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    cfg = EvalConfig(**config)
    import gymnasium as gym

    import envs  # noqa: F401 - registers the robodecode ids

    env = gym.make(cfg.env_id, split=cfg.split,
                   render_mode="rgb_array" if cfg.videos > 0 else None)
    policy = make_policy(cfg, env)
    if "torch" in sys.modules:  # the policy uses torch: fix its thread count
        sys.modules["torch"].set_num_threads(cfg.threads)
    _WORKER.clear()
    _WORKER.update(config=cfg, out=Path(out), env=env, policy=policy, warm=False)


def _run_episode(index: int) -> dict[str, Any]:
    """Run episode ``index`` in this worker; returns its JSON record."""
    from policies.base import reset_policy
    from policies.rollout import rollout

    cfg, env, policy = _WORKER["config"], _WORKER["env"], _WORKER["policy"]
    seed = cfg.seed + index
    if not _WORKER["warm"]:  # one untimed call so lazy initialisation is not counted
        obs, _ = env.reset(seed=seed)
        reset_policy(policy, seed)
        policy.infer(obs)
        _WORKER["warm"] = True
    tic = time.perf_counter()
    record = rollout(env, policy, seed, k=cfg.k, ensemble_decay=cfg.ensemble_decay,
                     latency=cfg.latency, max_steps=cfg.max_steps, video=index < cfg.videos,
                     rtc=cfg.rtc)
    data = {"episode": index, **record.to_dict(), "episode_s": time.perf_counter() - tic,
            "pid": os.getpid(), "machine": machine()}
    if record.frames:
        fps = env.metadata.get("render_fps") or 1.0 / _control_dt_or(env, 0.1)
        data["video"] = str(write_video(_WORKER["out"] / "videos" / f"episode_{index:04d}.mp4",
                                        record.frames, fps=fps))
    return data


def _control_dt_or(env: Any, default: float) -> float:
    from policies.rollout import control_dt

    try:
        return control_dt(env)
    except ValueError:
        return default


# ------------------------------------------------------------------------------ main side
def load_records(out: str | Path) -> dict[int, dict[str, Any]]:
    """Finished episodes recorded in ``out/episodes.jsonl`` by index (unreadable lines skipped)."""
    path = Path(out) / EPISODES_FILE
    records: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                records[int(record["episode"])] = record
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return records


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (no trailing newline) so the next append starts a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _same_weights(old: str | None, new: str, decoder: str | None) -> bool:
    """True when two checkpoint paths serve ``decoder`` with byte-identical weights."""
    import filecmp

    from policies.vla_policy import resolve_checkpoint

    if not old or not decoder:
        return False
    try:
        a, b = (resolve_checkpoint(p, decoder) / "model.safetensors" for p in (old, new))
        return filecmp.cmp(a, b, shallow=False)
    except (OSError, ValueError):
        return False


def identity_diff(old: dict[str, Any], config: EvalConfig) -> list[str]:
    """The run-identity fields in which a saved run's settings ``old`` differ from ``config``.

    The episode count is not one of them; nor is the checkpoint path when both paths serve
    byte-identical weights (a copied set).
    """
    defaults = {f.name: f.default for f in fields(EvalConfig)}  # keys older runs lack
    diff = [f for f in _RUN_IDENTITY if old.get(f, defaults[f]) != asdict(config).get(f)]
    if diff == ["policy"] and _same_weights(old.get("policy"), config.policy, config.decoder):
        diff = []
    return diff


def _prepare_out(config: EvalConfig, out: Path, resume: bool) -> dict[int, dict[str, Any]]:
    from envs.files import read_json_object, write_json_atomic

    _repair_tail(out / EPISODES_FILE)
    done = load_records(out)
    saved = out / CONFIG_FILE
    if done and not resume:
        raise ValueError(f"{out} already holds {len(done)} episodes; pass --resume to continue "
                         "that run or choose another --out")
    if resume and saved.exists():
        try:
            old = read_json_object(saved)
        except ValueError as err:
            raise ValueError(f"cannot resume: {err}; remove it (the run's settings) or choose "
                             "another --out") from None
        diff = identity_diff(old, config)
        if diff:
            raise ValueError(f"cannot resume {out}: it was run with different {', '.join(diff)}")
    write_json_atomic(saved, asdict(config))
    return done


def evaluate(config: EvalConfig, out: str | Path, *, resume: bool = False,
             progress: bool = True, runner: Callable[..., Iterator[dict[str, Any]]] | None = None
             ) -> dict[str, Any]:
    """Run (or finish) an evaluation and write ``episodes.jsonl`` and ``eval_info.json``.

    Args:
        config: What to evaluate.
        out: Output folder.
        resume: Skip episodes already recorded in ``out`` (the run's identity must match).
        progress: Show a tqdm progress bar on stderr.
        runner: Where episodes run: ``runner(config, out, todo)`` yields records as they
            finish; default: this process or spawned workers (``experiments.ray_eval``: Ray).

    Returns:
        The summary dict (also written to ``out/eval_info.json``).

    Raises:
        ValueError: Unknown env id, decoder spec, checkpoint or policy, or a non-resumable
            output folder.
    """
    from tqdm import tqdm

    from envs.files import append_jsonl_atomic, write_json_atomic

    check_env_id(config.env_id)
    check_policy(config)
    out = Path(out)
    done = _prepare_out(config, out, resume)
    todo = [i for i in range(config.episodes) if i not in done]
    tic = time.perf_counter()
    bar = tqdm(total=config.episodes, initial=config.episodes - len(todo), disable=not progress,
               desc=f"eval {config.policy if config.decoder is None else config.decoder}",
               unit="ep", file=sys.stderr)
    successes = sum(bool(done[i]["success"]) for i in range(config.episodes) if i in done)
    # closing(): an exception here (Ctrl-C, SIGTERM) stops the workers now, not at collection.
    with closing((runner or _run_all)(config, out, todo)) as records:
        try:
            for record in records:
                append_jsonl_atomic(out / EPISODES_FILE, record)
                done[record["episode"]] = record
                successes += bool(record["success"])
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{bar.n}")
        finally:
            bar.close()
    summary = summarize(config, [done[i] for i in range(config.episodes)],
                        eval_s=time.perf_counter() - tic, resumed=config.episodes - len(todo))
    write_json_atomic(out / SUMMARY_FILE, summary)
    return summary


def _run_all(config: EvalConfig, out: Path, todo: list[int]):
    """Yield episode records as they finish, in this process or in spawned workers."""
    if not todo:
        return
    cfg = asdict(config)
    if config.workers == 1:
        _init_worker(cfg, str(out))
        try:
            for index in todo:
                yield _run_episode(index)
        finally:
            _WORKER["env"].close()
            _WORKER.clear()
        return
    # A process pool that notices dead workers (an EGL or MuJoCo crash): the run then stops
    # with an error instead of waiting forever, and --resume picks up what was recorded. Its
    # workers die with this process; SIGTERM or Ctrl-C stops them (envs.workers).
    with worker_pool(min(config.workers, len(todo)), _init_worker, (cfg, str(out))) as pool:
        futures = [pool.submit(_run_episode, index) for index in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as err:
            raise RuntimeError(f"an eval worker died ({err}); finished episodes are saved in "
                               f"{out}, rerun with --resume") from None
        finally:
            for future in futures:
                future.cancel()
