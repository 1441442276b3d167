"""In-memory training tensors built once from any dataset of reader-style item dicts.

Decoding PNG frames on every step would dominate a CPU training run, so the frames are decoded
once, resized to the model's ``image_size`` and kept as uint8 tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from vla.model import Observation


@dataclass
class ChunkTensors:
    """Every item of a dataset as stacked tensors.

    Attributes:
        images: Camera key -> uint8 (N, s, s, 3).
        state: (N, S) float32.
        actions: (N, H, D) float32, env units.
        is_pad: (N, H) bool.
        instr_index: (N,) index into ``instructions``.
        instructions: Distinct instruction strings.
        episode: (N,) episode index of each item.
        aux: Optional (N, 7) auxiliary targets (:func:`grasp_release_targets`), else ``None``.
    """

    images: dict[str, torch.Tensor]
    state: torch.Tensor
    actions: torch.Tensor
    is_pad: torch.Tensor
    instr_index: torch.Tensor
    instructions: list[str]
    episode: torch.Tensor
    aux: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.state.shape[0]

    def to(self, device: str | torch.device) -> ChunkTensors:
        """A copy with every tensor on ``device``."""
        return ChunkTensors(images={k: v.to(device) for k, v in self.images.items()},
                            state=self.state.to(device), actions=self.actions.to(device),
                            is_pad=self.is_pad.to(device),
                            instr_index=self.instr_index.to(device),
                            instructions=self.instructions, episode=self.episode.to(device),
                            aux=self.aux.to(device) if self.aux is not None else None)

    def batch(self, idx: torch.Tensor, lang_table: torch.Tensor, size: int, shift: int = 0,
              generator: torch.Generator | None = None) -> tuple[
            Observation, torch.Tensor, torch.Tensor]:
        """(Observation, actions, is_pad) of the items ``idx``; images as float in [-1, 1].

        ``shift > 0`` translates each image by a random whole number of pixels in
        ``[-shift, shift]`` per axis, edges replicated (DrQ-style random shift augmentation).
        """
        idx = idx.to(self.state.device)
        images = [self.images[k][idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
                  for k in self.images]
        images = [x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")
                  for x in images]
        if shift > 0:
            images = [random_shift(x, shift, generator) for x in images]
        obs = Observation(images=images, state=self.state[idx],
                          lang=lang_table[self.instr_index[idx]],
                          aux=self.aux[idx] if self.aux is not None else None)
        return obs, self.actions[idx], self.is_pad[idx]

    def obs_dict(self, idx: Sequence[int]) -> dict[str, Any]:
        """An ``obs_batch`` dict (uint8 images, state, instructions) for ``predict_chunk``."""
        idx_t = torch.as_tensor(list(idx), dtype=torch.long)
        out: dict[str, Any] = {k: v[idx_t] for k, v in self.images.items()}
        out["state"] = self.state[idx_t]
        out["instruction"] = [self.instructions[int(i)] for i in self.instr_index[idx_t]]
        return out


def grasp_release_targets(data: ChunkTensors, gripper_dim: int = -1, xyz: slice = slice(0, 3),
                          close_sign: int | None = None) -> torch.Tensor:
    """Per item: where its episode's demo grasps and releases, for the auxiliary loss.

    The grasp point is the state's ``xyz`` at the episode's first closing gripper action (the
    chunk's first action in ``gripper_dim`` with the sign ``close_sign``), the release point
    the same at the first opening action after it, or at the episode's last item if it never
    re-opens. ``close_sign=None`` reads the convention from the data: demos start with the
    gripper open, so closing is the sign opposite to the one most episodes start with (the
    tabletop and MetaWorld close with ``-1``, robosuite / LIBERO with ``+1``). Returns (N, 7):
    grasp xyz, release xyz and a validity flag (0 for episodes that never close).
    """
    n = len(data)
    out = torch.zeros(n, 7)
    first_grip = data.actions[:, 0, gripper_dim].cpu()
    state, episode = data.state.cpu(), data.episode.cpu()
    if close_sign is None:
        close_sign = gripper_close_sign(data, gripper_dim)
    signed = first_grip * close_sign  # > 0 closes, < 0 opens
    for e in episode.unique():
        idx = (episode == e).nonzero().flatten()  # items of one episode, in time order
        closing = (signed[idx] > 0).nonzero().flatten()
        if len(closing) == 0:
            continue
        grasp = idx[closing[0]]
        later = (signed[idx[closing[0]:]] < 0).nonzero().flatten()
        release = idx[closing[0] + later[0]] if len(later) else idx[-1]
        out[idx, 0:3] = state[grasp, xyz]
        out[idx, 3:6] = state[release, xyz]
        out[idx, 6] = 1.0
    return out


def gripper_close_sign(data: ChunkTensors, gripper_dim: int = -1) -> int:
    """The sign of a closing gripper action: opposite to the sign most episodes start with.

    Demos start with an open gripper, so the first action of each episode (items in time
    order) gives the open sign; ``-1`` when the data cannot tell (no episode starts with a
    non-zero gripper action).
    """
    episode = data.episode.cpu().numpy()
    first = torch.as_tensor(np.unique(episode, return_index=True)[1], dtype=torch.long)
    vote = int(torch.sign(data.actions[first, 0, gripper_dim].cpu()).sum())
    return 1 if vote < 0 else -1


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator | None
                 ) -> torch.Tensor:
    """Translate each image of (B, C, S, S) by random integer pixels, borders replicated."""
    b, _, size, _ = x.shape
    offsets = torch.randint(-shift, shift + 1, (b, 2), generator=generator).to(x.device)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = offsets.to(x.dtype) * (2.0 / size)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)


def load_chunks(dataset: Dataset, cameras: Sequence[str], image_size: int,
                horizon: int, action_dim: int) -> ChunkTensors:
    """Decode every item of ``dataset`` once into :class:`ChunkTensors`.

    Args:
        dataset: Yields reader items (``ActionChunkDataset`` or a compatible fixture).
        cameras: Camera keys to keep, in model order.
        image_size: Side the images are resized to (area interpolation).
        horizon: Expected chunk length H.
        action_dim: Expected action dimension D.

    Raises:
        ValueError: If the dataset is empty or its items do not match the model's layout.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset is empty")
    first = dataset[0]
    missing = [k for k in (*cameras, "state", "instruction", "actions") if k not in first]
    if missing:
        raise ValueError(f"dataset items lack keys {missing}; have {sorted(first)}")
    if tuple(first["actions"].shape) != (horizon, action_dim):
        raise ValueError(f"dataset actions are {tuple(first['actions'].shape)}, the model "
                         f"expects (horizon={horizon}, action_dim={action_dim})")
    images: dict[str, list[torch.Tensor]] = {k: [] for k in cameras}
    state, actions, pad, instr, episode = [], [], [], [], []
    index: dict[str, int] = {}
    for i in range(n):
        item = first if i == 0 else dataset[i]
        for k in cameras:
            img = torch.as_tensor(item[k])
            if img.shape[0] != image_size:
                x = img.permute(2, 0, 1)[None].float()
                x = F.interpolate(x, size=(image_size, image_size), mode="area")
                img = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
            images[k].append(img)
        state.append(torch.as_tensor(item["state"], dtype=torch.float32))
        actions.append(torch.as_tensor(item["actions"], dtype=torch.float32))
        pad.append(torch.as_tensor(item.get("action_is_pad", torch.zeros(horizon, dtype=bool))))
        instr.append(index.setdefault(item["instruction"], len(index)))
        episode.append(int(item.get("episode_index", 0)))
    return ChunkTensors(images={k: torch.stack(v) for k, v in images.items()},
                        state=torch.stack(state), actions=torch.stack(actions),
                        is_pad=torch.stack(pad).bool(), instr_index=torch.tensor(instr),
                        instructions=list(index), episode=torch.tensor(episode))


def save_chunks(data: ChunkTensors, path: str | Path) -> None:
    """Write :class:`ChunkTensors` to one safetensors file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"image.{k}": v.contiguous() for k, v in data.images.items()}
    tensors.update(state=data.state, actions=data.actions, is_pad=data.is_pad,
                   instr_index=data.instr_index, episode=data.episode)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"instructions": json.dumps(data.instructions),
                                           "cameras": json.dumps(list(data.images))})
    os.replace(tmp, path)


def read_chunks(path: str | Path) -> ChunkTensors:
    """Read :class:`ChunkTensors` written by :func:`save_chunks` (no pickle)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    cams = json.loads(meta["cameras"])
    return ChunkTensors(images={k: t[f"image.{k}"] for k in cams}, state=t["state"],
                        actions=t["actions"], is_pad=t["is_pad"], instr_index=t["instr_index"],
                        instructions=json.loads(meta["instructions"]), episode=t["episode"])


@dataclass
class Split:
    """A dataset split by episode, decoded for training.

    Attributes:
        train: Training tensors.
        val: Held-out tensors (``None`` when no episode is held out).
        stats: The reader's statistics (``{"action": ..., "state": ...}`` of numpy arrays).
        action_dim: D of the data.
        state_dim: S of the data.
    """

    train: ChunkTensors
    val: ChunkTensors | None
    stats: dict[str, dict[str, Any]]
    action_dim: int
    state_dim: int


def _cache_key(root: Path, *parts: Any) -> str:
    files = sorted((root / "data").glob("*/*.parquet")) + [root / "meta" / "info.json"]
    sig = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha1(json.dumps([sig, *map(str, parts)]).encode()).hexdigest()[:16]


def load_split(root: str | Path, horizon: int, cameras: Sequence[str], image_size: int,
               val_fraction: float = 0.1, seed: int = 0,
               cache_dir: str | Path | None = None) -> Split:
    """Read a LeRobot v3 dataset, split it by episode and decode both parts.

    Args:
        root: Dataset folder (anything ``envs.dataset_reader.ActionChunkDataset`` reads).
        horizon: Chunk length H.
        cameras: Camera keys for the model.
        image_size: Model image side.
        val_fraction: Share of episodes held out for validation.
        seed: Seed of the episode split.
        cache_dir: Folder for decoded tensors keyed by the dataset's files and these
            arguments; a hit skips the reader entirely.

    Returns:
        The :class:`Split`.
    """
    root = Path(root)
    cache = None
    if cache_dir is not None:
        key = _cache_key(root, horizon, list(cameras), image_size, val_fraction, seed)
        cache = Path(cache_dir) / f"chunks-{key}"
        if (cache / "meta.json").is_file():
            meta = json.loads((cache / "meta.json").read_text())
            val = read_chunks(cache / "val.safetensors") if meta["has_val"] else None
            stats = {k: {n: np.asarray(v, np.float32) for n, v in d.items()}
                     for k, d in meta["stats"].items()}
            return Split(read_chunks(cache / "train.safetensors"), val, stats,
                         meta["action_dim"], meta["state_dim"])
    from envs.dataset_reader import ActionChunkDataset, split_episodes

    train_eps, val_eps = split_episodes(root, val_fraction=val_fraction, seed=seed)
    reader = ActionChunkDataset(root, horizon, episodes=train_eps)
    missing = [c for c in cameras if c not in reader.camera_keys]
    if missing:
        raise ValueError(f"cameras {missing} are not in {root}; it has {reader.camera_keys}")
    train = load_chunks(reader, cameras, image_size, horizon, reader.action_dim)
    val = None
    if val_eps:
        val = load_chunks(ActionChunkDataset(root, horizon, episodes=val_eps), cameras,
                          image_size, horizon, reader.action_dim)
    split = Split(train, val, reader.stats, reader.action_dim, reader.state_dim)
    if cache is not None:
        save_chunks(train, cache / "train.safetensors")
        if val is not None:
            save_chunks(val, cache / "val.safetensors")
        meta = {"has_val": val is not None, "action_dim": split.action_dim,
                "state_dim": split.state_dim, "root": str(root),
                "stats": {k: {n: np.asarray(v).tolist() for n, v in d.items()}
                          for k, d in split.stats.items()}}
        (cache / "meta.json").write_text(json.dumps(meta))
    return split
