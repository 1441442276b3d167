"""Collect scripted-expert demonstrations into a LeRobotDataset v3.0 folder.

Usage: robodecode collect --env robodecode/TabletopPickPlace-v0 --episodes 50 --out scratch/demos

``collect`` rolls out ``envs.make_expert(env)`` and stores every frame (observation images as
lossless PNG, state, instruction, the action sent to the env). Attempt ``i`` uses seed
``seed + i`` for both the env reset and the expert's noise, so any stored episode can be replayed
exactly from its ``seed`` column.

Several targets per layout (``targets_per_layout=K``, for envs with ``target_choices()`` such as
the tabletop): attempt ``i`` resets with seed ``seed + i // K`` (the layout) and
``options={"target": ...}``, the ``i % K``-th of K distinct target pairs (the seed's own target
first, then a choice seeded by the layout seed), so K episodes share one scene and differ only
in what the instruction asks. The options are stored per episode (``reset_options`` column of
``meta/episodes``, JSON): replay with ``env.reset(seed=seed, options=json.loads(...))``. The
dataset then holds whole layouts only: all K attempts of a layout succeeded (or
``keep_failed``).

Crash safety: each finished attempt is written on its own, atomically, to
``<out>/.staging/episode_<attempt>.parquet`` (temporary file + ``os.replace``); a rerun of the
same command skips attempts already staged. Only then is the v3.0 layout (``data/``, ``meta/``,
optionally ``videos/``) rebuilt from the staged episodes, file by file atomically, with
``meta/info.json`` written last: a folder without ``info.json`` is an unfinished consolidation
and the next ``collect`` finishes it. Keep ``.staging/`` to extend the dataset later; deleting it
halves the disk use and leaves a complete dataset.

Failed expert attempts: by default the dataset keeps only successful demonstrations (behaviour
cloning data should show the task done), and ``collect`` tries further seeds until it has
``episodes`` of them; failures stay staged so a rerun does not repeat them, and every stored
episode records its ``seed`` and ``success``. ``keep_failed=True`` stores attempts
``0 .. episodes-1`` whatever their outcome.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.files import read_json_object, remove_temporary_files, write_json_atomic
from envs.ids import check_env_id, demo_env_kwargs
from envs.layout_targets import layout_targets
from envs.lerobot_format import (
    IMAGE_PREFIX,
    IMAGE_STRUCT,
    INFO_PATH,
    READ_ERRORS,
    encode_png,
    staged_file_error,
)
from envs.lerobot_format import write_parquet_atomic as _write_parquet
from envs.workers import worker_pool

STAGING_DIR = ".staging"
RUN_SPEC_FILE = "collect.json"
EPISODE_META_KEY = b"robodecode.episode"
_SPEC_FIELDS = ("env_id", "env_kwargs", "noise", "seed", "targets_per_layout")
_SPEC_DEFAULTS = {"targets_per_layout": 1}
"""Values of fields that ``collect.json`` files written before the field existed imply."""


@dataclass(frozen=True)
class CollectResult:
    """What one ``collect`` call produced.

    Attributes:
        root: The dataset folder.
        episodes: Episodes in the dataset.
        frames: Frames (env steps) in the dataset.
        attempts: Expert attempts staged so far (kept or not).
        successes: Successful attempts among them.
        new_attempts: Attempts run by this call (the rest were resumed from staging).
        seconds: Wall time of this call.
    """

    root: Path
    episodes: int
    frames: int
    attempts: int
    successes: int
    new_attempts: int
    seconds: float


def record_episode(env: Any, seed: int, noise: float = 0.0,
                   options: dict[str, Any] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Roll out the scripted expert once and return the frames as a staging table.

    Frame ``t`` holds the observation before step ``t`` and the action taken from it (clipped to
    the action space, exactly what ``env.step`` received), so replaying the ``action`` column
    from ``env.reset(seed=seed)`` reproduces the episode.

    Args:
        env: An env made by ``gymnasium.make`` (dict observations with ``state``,
            ``instruction`` and uint8 images).
        seed: Seed of ``env.reset`` and of the expert's noise.
        noise: Expert action-noise level.
        options: ``options`` of ``env.reset`` (e.g. a target override), stored in the facts.

    Returns:
        The table (columns ``frame_index``, ``timestamp``, ``observation.state``, ``action``,
        ``observation.images.<cam>``, ``task``) and episode facts (``seed``, ``success``,
        ``length``, ``fps``, and ``reset_options`` when ``options`` is given).
    """
    from envs.experts import make_expert

    fps = episode_fps(env)
    obs, info = env.reset(seed=seed, options=options)
    expert = make_expert(env, noise=noise, seed=seed)
    expert.reset()
    cams = sorted((k for k, v in obs.items() if _is_image(v)), key=lambda k: (k != "image", k))
    low, high = env.action_space.low, env.action_space.high
    max_steps = (env.spec.max_episode_steps if env.spec else None) or 10_000
    columns: dict[str, list] = {"state": [], "action": [], "task": [], **{c: [] for c in cams}}
    done = False
    while not done and len(columns["action"]) < max_steps:
        action = np.clip(np.asarray(expert.act(obs), dtype=np.float32), low, high)
        columns["state"].append(np.asarray(obs["state"], dtype=np.float32))
        columns["action"].append(action)
        columns["task"].append(str(obs["instruction"]))
        for c in cams:
            columns[c].append({"bytes": encode_png(obs[c]), "path": None})
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    n = len(columns["action"])
    state = np.stack(columns["state"])
    action = np.stack(columns["action"])
    table = pa.table({
        "frame_index": pa.array(np.arange(n), pa.int64()),
        "timestamp": pa.array((np.arange(n) / fps).astype(np.float32)),
        "observation.state": _fixed_list(state),
        "action": _fixed_list(action),
        **{IMAGE_PREFIX + c: pa.array(columns[c], IMAGE_STRUCT) for c in cams},
        "task": pa.array(columns["task"], pa.string()),
    })
    meta = {"seed": int(seed), "success": bool(info.get("is_success", False)), "length": n,
            "fps": fps, "state_names": _names(env, "state_names", state.shape[1]),
            "action_names": _names(env, "action_names", action.shape[1])}
    if options is not None:
        meta["reset_options"] = options
    return table, meta


def episode_fps(env: Any) -> float:
    """Control frequency of ``env`` in Hz: ``1 / control_dt``, else ``metadata["render_fps"]``."""
    base = env.unwrapped
    dt = getattr(base, "control_dt", None)
    if dt:
        fps = 1.0 / float(dt)
    elif base.metadata.get("render_fps"):
        fps = float(base.metadata["render_fps"])
    else:
        raise ValueError(f"{type(base).__name__} has neither control_dt nor render_fps")
    return float(round(fps)) if abs(fps - round(fps)) < 1e-6 else fps


def _is_image(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3


def _fixed_list(values: np.ndarray) -> pa.Array:
    flat = pa.array(values.astype(np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _names(env: Any, attr: str, dim: int) -> list[str]:
    names = getattr(env.unwrapped, attr, None)
    if names is not None and len(names) == dim:
        return [str(n) for n in names]
    return [f"{attr.split('_')[0]}_{i}" for i in range(dim)]


class _Recorder:
    """Owns one env and stages attempts to ``<staging>/episode_<attempt>.parquet``."""

    def __init__(self, spec: dict[str, Any], staging: Path):
        import gymnasium

        env_id = check_env_id(spec["env_id"])
        self.spec = spec
        self.staging = staging
        self.env = gymnasium.make(env_id, **spec["env_kwargs"])
        self.per_layout = int(spec.get("targets_per_layout", 1))
        self._targets: dict[int, list[dict[str, Any]]] = {}

    def record(self, attempt: int) -> dict[str, Any]:
        seed = self.spec["seed"] + attempt // self.per_layout
        options = None
        if self.per_layout > 1:
            options = {"target": self.layout_targets(seed)[attempt % self.per_layout]}
        table, meta = record_episode(self.env, seed, self.spec["noise"], options)
        meta["attempt"] = attempt
        table = table.replace_schema_metadata({EPISODE_META_KEY: json.dumps(meta).encode()})
        _write_parquet(table, staged_path(self.staging, attempt))
        return meta

    def layout_targets(self, seed: int) -> list[dict[str, Any]]:
        """The ``targets_per_layout`` distinct targets of layout ``seed`` (its own one first)."""
        if seed not in self._targets:
            targets = layout_targets(self.env, seed, self.per_layout)
            self._targets = {seed: targets}  # keep only the last
        return self._targets[seed]

    def close(self) -> None:
        self.env.close()


_WORKER_RECORDER: _Recorder | None = None  # one per spawned worker process


def _init_worker(spec: dict[str, Any], staging: str) -> None:
    """Worker initializer: headless MuJoCo before anything imports it, then one env."""
    global _WORKER_RECORDER
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    _WORKER_RECORDER = _Recorder(spec, Path(staging))


def _worker_record(attempt: int) -> dict[str, Any]:
    assert _WORKER_RECORDER is not None, "worker not initialised"
    return _WORKER_RECORDER.record(attempt)


@contextmanager
def _attempt_runner(spec: dict[str, Any], staging: Path, workers: int):
    """Yield ``run(attempts) -> iterator of episode metas`` (in process or on spawned workers)."""
    if workers == 1:
        recorder = _Recorder(spec, staging)
        try:
            yield lambda attempts: (recorder.record(a) for a in attempts)
        finally:
            recorder.close()
        return
    # The workers die with this process; SIGTERM or Ctrl-C stops them (envs.workers).
    with worker_pool(workers, _init_worker, (spec, str(staging))) as pool:
        def run(attempts: list[int]) -> Iterator[dict[str, Any]]:
            futures = [pool.submit(_worker_record, a) for a in attempts]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            finally:
                for fut in futures:
                    fut.cancel()

        yield run


def staged_path(staging: Path, attempt: int) -> Path:
    """Where attempt ``attempt`` is staged."""
    return staging / f"episode_{attempt:06d}.parquet"


def read_staged(staging: Path) -> dict[int, dict[str, Any]]:
    """Episode facts of every staged attempt (reads parquet footers only).

    Raises:
        ValueError: One line naming a staged file that cannot be read.
    """
    out = {}
    for path in sorted(staging.glob("episode_*.parquet")):
        try:
            meta = json.loads(pq.read_schema(path).metadata[EPISODE_META_KEY])
            out[int(meta["attempt"])] = meta
        except READ_ERRORS as err:
            raise staged_file_error(path, err) from None
    return out


def _prepare_staging(out: Path, spec: dict[str, Any]) -> Path:
    """Create or reopen ``<out>/.staging``; refuse a folder collected with other settings."""
    staging = out / STAGING_DIR
    spec_path = staging / RUN_SPEC_FILE
    if spec_path.exists():
        old = read_json_object(spec_path)
        for field in _SPEC_FIELDS:
            previous = old.get(field, _SPEC_DEFAULTS.get(field))
            if previous != spec[field]:
                raise ValueError(
                    f"{out} was collected with {field}={previous!r}, not {spec[field]!r}; "
                    "use another --out or the same settings to resume")
    elif (out / INFO_PATH).exists():
        raise ValueError(f"out={str(out)!r} already holds a dataset without {STAGING_DIR}/; "
                         "choose an empty folder")
    else:
        write_json_atomic(spec_path, spec, indent=4)
    remove_temporary_files(staging)  # leftovers of a crash mid-write
    return staging


def collect(env_id: str, episodes: int, out: str | os.PathLike, noise: float = 0.0,
            workers: int = 1, seed: int = 0, env_kwargs: dict[str, Any] | None = None, *,
            keep_failed: bool = False, video: bool = False, max_attempts: int | None = None,
            targets_per_layout: int = 1, progress: bool = True) -> CollectResult:
    """Collect expert demonstrations of ``env_id`` into a LeRobotDataset v3.0 folder.

    Args:
        env_id: A registered gymnasium id (``robodecode/...``, or ``module:Id`` to import the
            registering module first).
        episodes: Episodes the dataset must hold.
        out: Dataset folder; an existing one made by ``collect`` with the same settings resumes.
        noise: Expert action-noise level (diverse demonstrations).
        workers: Processes rolling out episodes (spawned, each with its own env).
        seed: Attempt ``i`` uses ``seed + i // targets_per_layout``.
        env_kwargs: Keyword arguments for ``gymnasium.make`` (e.g. ``{"image_size": 128}``),
            on top of the env's own demonstration settings (:func:`envs.ids.demo_env_kwargs`:
            LIBERO records from sampled layouts, never its evaluation initial states).
        keep_failed: Store failed expert attempts too (attempts ``0..episodes-1`` exactly);
            by default only successes are stored and more seeds are tried as needed.
        video: Store images as mp4 (H.264, lossy) under ``videos/`` instead of PNG in parquet.
        max_attempts: Give up after this many attempts (default ``2 * episodes + 10``).
        targets_per_layout: Episodes per layout seed, each with another target pair (see the
            module docstring); ``episodes`` must be a multiple of it.
        progress: Show a progress bar.

    Returns:
        A :class:`CollectResult`.

    Raises:
        ValueError: On a bad argument, an unknown env id, or an ``out`` collected differently.
        RuntimeError: If fewer than ``episodes`` successes come within ``max_attempts``.
    """
    from tqdm.auto import tqdm

    from envs.lerobot_consolidate import consolidate

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    if not isinstance(targets_per_layout, int) or targets_per_layout < 1:
        raise ValueError(f"targets_per_layout must be an int >= 1, got {targets_per_layout!r}")
    per = targets_per_layout
    if episodes % per:
        raise ValueError(f"episodes ({episodes}) must be a multiple of "
                         f"targets_per_layout ({per})")
    max_attempts = 2 * episodes + 10 if max_attempts is None else max_attempts
    if max_attempts < episodes:
        raise ValueError(f"max_attempts ({max_attempts}) must be >= episodes ({episodes})")
    env_kwargs = {**demo_env_kwargs(env_id), **(env_kwargs or {})}
    start = time.perf_counter()
    spec = {"env_id": env_id, "env_kwargs": env_kwargs, "noise": float(noise),
            "seed": int(seed), "targets_per_layout": per}
    out = Path(out)
    staging = _prepare_staging(out, spec)
    done = read_staged(staging)
    resumed = len(done)

    def kept() -> list[int]:
        if keep_failed:
            return [a for a in range(episodes) if a in done]
        layouts = sorted({a // per for a in done})
        return [a for g in layouts for a in range(g * per, g * per + per)
                if all(b in done and done[b]["success"] for b in range(g * per, g * per + per))]

    bar = tqdm(total=episodes, initial=min(len(kept()), episodes), unit="ep",
               desc=f"collect {env_id}", disable=not progress)
    try:
        while len(kept()) < episodes:
            need = episodes - len(kept())
            todo = [a for a in range(max_attempts) if a not in done][:need]
            if not todo:
                raise RuntimeError(
                    f"only {len(kept())} of {episodes} expert attempts of {env_id} succeeded "
                    f"within max_attempts={max_attempts}; the expert looks broken at "
                    f"noise={noise}")
            with _attempt_runner(spec, staging, min(workers, len(todo))) as run:
                for meta in run(todo):
                    done[meta["attempt"]] = meta
                    bar.update(int(keep_failed or meta["success"]))
                    bar.set_postfix(failed=sum(not m["success"] for m in done.values()))
    finally:
        bar.close()
    chosen = kept()[:episodes]
    frames = consolidate(out, [staged_path(staging, a) for a in chosen],
                         [done[a] for a in chosen], spec=spec, video=video)
    return CollectResult(root=out, episodes=len(chosen), frames=frames, attempts=len(done),
                         successes=sum(m["success"] for m in done.values()),
                         new_attempts=len(done) - resumed,
                         seconds=time.perf_counter() - start)
