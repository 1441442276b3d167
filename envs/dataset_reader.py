"""Read a LeRobotDataset v3.0 folder (ours or any on disk) as a torch ``Dataset`` of action chunks.

Usage:
    ds = ActionChunkDataset("scratch/demos", horizon=8)
    item = ds[0]  # {"image", "state", "instruction", "actions", "action_is_pad", ...}

One item per stored frame: the observation at that frame, its instruction (the frame's task), and
the ``horizon`` actions starting at that frame; past the episode's end the last action repeats
and ``action_is_pad`` is True. Images are decoded lazily per item (PNG bytes in the parquet, or
mp4 segments for ``video`` features, decoded once per episode). This module is the only thing
``vla/`` imports from ``envs/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from envs.lerobot_format import (
    EPISODES_PATH,
    IMAGE_PREFIX,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    decode_image,
    read_tasks,
    vector_column,
)

STAT_KEYS = ("mean", "std", "min", "max", "q01", "q99")


def _load_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.exists():
        hint = (" (an unfinished collect: rerun it to finish)" if (root / ".staging").exists()
                else "")
        raise ValueError(f"root={str(root)!r} is not a LeRobot dataset: no {INFO_PATH}{hint}")
    info = json.loads(path.read_text())
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise ValueError(f"root={str(root)!r} has codebase_version {version!r}; only v3.x is read")
    return info


def camera_names(features: dict[str, Any]) -> dict[str, str]:
    """Map item keys to image feature keys: ``image`` (main camera), ``wrist_image``, others.

    ``observation.images.image`` / ``observation.images.wrist_image`` (our names, and LIBERO's)
    map directly; in other datasets the first non-wrist camera becomes ``image``, a camera whose
    name contains "wrist" becomes ``wrist_image``, and any further camera keeps its own name.
    """
    cams = [k for k, f in features.items()
            if f.get("dtype") in ("image", "video") and k.startswith("observation.image")]
    out: dict[str, str] = {}
    short = {k: k[len(IMAGE_PREFIX):] if k.startswith(IMAGE_PREFIX) else k.split(".")[-1]
             for k in cams}
    for k in cams:
        if short[k] in ("image", "wrist_image"):
            out[short[k]] = k
    for k in cams:
        if k in out.values():
            continue
        if "wrist" in short[k] and "wrist_image" not in out:
            out["wrist_image"] = k
        elif "image" not in out:
            out["image"] = k
        else:
            out[short[k]] = k
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "image", kv[0] != "wrist_image")))


def load_episode_table(root: str | Path) -> pa.Table:
    """All rows of ``meta/episodes/*/*.parquet`` (per-episode metadata), sorted by episode."""
    root = Path(root)
    paths = sorted((root / EPISODES_PATH.split("/chunk-")[0]).glob("*/*.parquet"))
    if not paths:
        raise ValueError(f"root={str(root)!r} has no meta/episodes/*/*.parquet")
    tables = [pq.read_table(p) for p in paths]
    keep = [c for c in tables[0].column_names if not c.startswith("stats/")]
    table = pa.concat_tables([t.select(keep) for t in tables], promote_options="permissive")
    return table.sort_by("episode_index")


def split_episodes(root: str | Path, val_fraction: float = 0.1,
                   seed: int = 0) -> tuple[list[int], list[int]]:
    """Split the dataset's episode indices at random into (train, validation).

    Args:
        root: Dataset folder.
        val_fraction: Share of episodes for validation, in [0, 1); at least one episode goes to
            validation when the fraction is positive and there are two or more episodes.
        seed: Seed of the shuffle.

    Returns:
        Sorted ``(train_episodes, val_episodes)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    episodes = sorted(load_episode_table(root).column("episode_index").to_pylist())
    n_val = int(round(val_fraction * len(episodes)))
    if val_fraction > 0 and len(episodes) > 1:
        n_val = min(max(n_val, 1), len(episodes) - 1)
    order = np.random.default_rng(seed).permutation(len(episodes))
    val = sorted(episodes[i] for i in order[:n_val])
    train = sorted(episodes[i] for i in order[n_val:])
    return train, val


class ActionChunkDataset(Dataset):
    """Frames of a LeRobot v3 dataset with the action chunk that follows each frame.

    Item keys: ``image`` (uint8 tensor H x W x 3), ``wrist_image`` (when the dataset has one;
    further cameras under their own names), ``state`` (float32 [S]), ``instruction`` (str),
    ``actions`` (float32 [horizon, D]), ``action_is_pad`` (bool [horizon]), ``episode_index``,
    ``frame_index`` (int).

    Attributes:
        stats: ``{"action": {...}, "state": {...}}``, each ``mean, std, min, max, q01, q99``
            numpy arrays over the whole dataset (from ``meta/stats.json``; missing entries,
            e.g. quantiles in older datasets, are computed from the data).
        action_dim, state_dim: Sizes of one action / state vector.
        camera_keys: Item keys of the images, main camera first.
        fps: Frames per second of the recording.
        episode_indices: Episodes in this view (sorted).
    """

    def __init__(self, root: str | Path, horizon: int, episodes: list[int] | None = None, *,
                 cache_images: bool = False):
        """Load the tabular data of ``root`` (images stay encoded until an item needs them).

        Args:
            root: Dataset folder (``meta/info.json`` at its top).
            horizon: Length of the action chunk of every item.
            episodes: Episode indices to keep (default: all).
            cache_images: Keep decoded images in memory after their first use.

        Raises:
            ValueError: If ``horizon < 1``, the folder is not a v3 dataset, or an episode index
                is not in it.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.root = Path(root)
        self.horizon = horizon
        self.cache_images = cache_images
        self.info = _load_info(self.root)
        features = self.info["features"]
        self.fps = float(self.info["fps"])
        self._cameras = camera_names(features)
        self.camera_keys = list(self._cameras)
        self._video_cams = {k for k, f in self._cameras.items()
                            if features[f]["dtype"] == "video"}

        table = self._read_frames(features)
        order = np.lexsort((table.column("frame_index").to_numpy(),
                            table.column("episode_index").to_numpy()))
        table = table.take(pa.array(order))
        all_actions = vector_column(table.column("action")).astype(np.float32)
        has_state = "observation.state" in table.column_names
        all_state = (vector_column(table.column("observation.state")).astype(np.float32)
                     if has_state else np.zeros((table.num_rows, 0), np.float32))
        episode = table.column("episode_index").to_numpy().astype(np.int64)
        self.stats = self._load_stats(all_actions, all_state)

        present = np.unique(episode)
        if episodes is not None:
            missing = sorted(set(int(e) for e in episodes) - set(present.tolist()))
            if missing:
                raise ValueError(f"episodes {missing[:10]} are not in {self.root}")
            keep = np.isin(episode, np.asarray(list(episodes), dtype=np.int64))
            table = table.filter(pa.array(keep))
            all_actions, all_state, episode = all_actions[keep], all_state[keep], episode[keep]
        self.episode_indices = sorted(int(e) for e in np.unique(episode))
        self.actions, self.state, self.episode = all_actions, all_state, episode
        self.frame = table.column("frame_index").to_numpy().astype(np.int64)
        # Row of each episode's last frame, for every row.
        last = np.r_[np.nonzero(np.diff(episode))[0], len(episode) - 1]
        self._last_row = np.repeat(last, np.diff(np.r_[-1, last]))
        self._first_row = {int(episode[i]): i for i in np.r_[0, last[:-1] + 1]} \
            if len(episode) else {}
        tasks = read_tasks(self.root / TASKS_PATH)
        self._task_index = table.column("task_index").to_numpy().astype(np.int64)
        self._tasks = tasks
        self._images = {k: table.column(f).combine_chunks() for k, f in self._cameras.items()
                        if k not in self._video_cams}
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._episode_meta = ({int(r["episode_index"]): r
                               for r in load_episode_table(self.root).to_pylist()}
                              if self._video_cams else {})
        self._video_memo: tuple[tuple[str, int], list[np.ndarray]] | None = None
        self.action_dim = int(all_actions.shape[1])
        self.state_dim = int(all_state.shape[1])

    def _read_frames(self, features: dict[str, Any]) -> pa.Table:
        """Concatenate every data file (``data/*/*.parquet``) with the columns we use."""
        paths = sorted((self.root / "data").glob("*/*.parquet"))
        if not paths:
            raise ValueError(f"root={str(self.root)!r} has no data/*/*.parquet")
        wanted = ["episode_index", "frame_index", "task_index", "action", "observation.state",
                  *(f for k, f in self._cameras.items() if k not in self._video_cams)]
        tables = []
        for path in paths:
            names = pq.read_schema(path).names
            tables.append(pq.read_table(path, columns=[c for c in wanted if c in names]))
        table = pa.concat_tables(tables, promote_options="permissive")
        for col in ("episode_index", "frame_index", "task_index", "action"):
            if col not in table.column_names:
                raise ValueError(f"{self.root}: the data files have no {col!r} column")
        return table

    def _load_stats(self, actions: np.ndarray, state: np.ndarray) -> dict[str, dict[str, Any]]:
        """Action/state statistics from meta/stats.json, completed from the data if needed."""
        path = self.root / STATS_PATH
        stored = json.loads(path.read_text()) if path.exists() else {}
        out = {}
        for name, key, values in (("action", "action", actions),
                                  ("state", "observation.state", state)):
            have = stored.get(key, {})
            x = values.astype(np.float64)
            computed = {
                "mean": lambda x=x: x.mean(0), "std": lambda x=x: x.std(0),
                "min": lambda x=x: x.min(0), "max": lambda x=x: x.max(0),
                "q01": lambda x=x: np.quantile(x, 0.01, axis=0),
                "q99": lambda x=x: np.quantile(x, 0.99, axis=0),
            }
            out[name] = {s: (np.asarray(have[s], np.float32).reshape(-1) if s in have
                             else computed[s]().astype(np.float32)
                             if x.shape[1] else np.zeros(0, np.float32))
                         for s in STAT_KEYS}
        return out

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i = int(i) % len(self)
        steps = i + np.arange(self.horizon)
        last = self._last_row[i]
        item: dict[str, Any] = {
            key: torch.from_numpy(np.array(self._image(key, i))) for key in self.camera_keys}
        item.update({
            "state": torch.from_numpy(self.state[i].copy()),
            "instruction": self._tasks[int(self._task_index[i])],
            "actions": torch.from_numpy(self.actions[np.minimum(steps, last)]),
            "action_is_pad": torch.from_numpy(steps > last),
            "episode_index": int(self.episode[i]),
            "frame_index": int(self.frame[i]),
        })
        return item

    def _image(self, key: str, row: int) -> np.ndarray:
        """Decoded image of camera ``key`` at ``row`` (PNG per frame, video per episode)."""
        if (key, row) in self._cache:
            return self._cache[(key, row)]
        if key in self._video_cams:
            frames = self._decode_episode_video(key, int(self.episode[row]))
            start = self._first_row[int(self.episode[row])]
            image = frames[row - start]
            if self.cache_images:
                self._cache.update({(key, start + j): f for j, f in enumerate(frames)})
            return image
        cell = self._images[key][row]
        data = cell["bytes"].as_py() if isinstance(cell, pa.StructScalar) else cell.as_py()
        if data is None:  # LeRobot "image" cells may reference a file instead of embedding it
            data = (self.root / cell["path"].as_py()).read_bytes()
        image = decode_image(data)
        if self.cache_images:
            self._cache[(key, row)] = image
        return image

    def _decode_episode_video(self, key: str, episode: int) -> list[np.ndarray]:
        """All frames of ``episode`` from its mp4 segment (cached for the current episode)."""
        memo = self._video_memo
        if memo is not None and memo[0] == (key, episode):
            return memo[1]
        import av

        meta = self._episode_meta[episode]
        feature = self._cameras[key]
        path = self.root / self.info["video_path"].format(
            video_key=feature, chunk_index=int(meta[f"videos/{feature}/chunk_index"]),
            file_index=int(meta[f"videos/{feature}/file_index"]))
        start = float(meta[f"videos/{feature}/from_timestamp"])
        length = int(meta["length"])
        frames: list[np.ndarray] = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start - 0.5 / self.fps:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == length:
                    break
        if len(frames) != length:
            raise ValueError(f"{path}: episode {episode} has {len(frames)} video frames, "
                             f"expected {length}")
        self._video_memo = ((key, episode), frames)
        return frames

    def episode_info(self) -> list[dict[str, Any]]:
        """Per-episode metadata rows (length, tasks, index range; ours add seed and success)."""
        return load_episode_table(self.root).to_pylist()
