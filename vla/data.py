"""In-memory training tensors built once from any dataset of reader-style item dicts.

Decoding PNG frames on every step would dominate a CPU training run, so the frames are decoded
once, resized to the model's ``image_size`` and kept as uint8 tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
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
    """

    images: dict[str, torch.Tensor]
    state: torch.Tensor
    actions: torch.Tensor
    is_pad: torch.Tensor
    instr_index: torch.Tensor
    instructions: list[str]
    episode: torch.Tensor

    def __len__(self) -> int:
        return self.state.shape[0]

    def batch(self, idx: torch.Tensor, lang_table: torch.Tensor, size: int) -> tuple[
            Observation, torch.Tensor, torch.Tensor]:
        """(Observation, actions, is_pad) of the items ``idx``; images as float in [-1, 1]."""
        images = [self.images[k][idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
                  for k in self.images]
        images = [x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")
                  for x in images]
        obs = Observation(images=images, state=self.state[idx],
                          lang=lang_table[self.instr_index[idx]])
        return obs, self.actions[idx], self.is_pad[idx]

    def obs_dict(self, idx: Sequence[int]) -> dict[str, Any]:
        """An ``obs_batch`` dict (uint8 images, state, instructions) for ``predict_chunk``."""
        idx_t = torch.as_tensor(list(idx), dtype=torch.long)
        out: dict[str, Any] = {k: v[idx_t] for k, v in self.images.items()}
        out["state"] = self.state[idx_t]
        out["instruction"] = [self.instructions[int(i)] for i in self.instr_index[idx_t]]
        return out


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
