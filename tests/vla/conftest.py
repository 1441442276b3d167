"""Fixtures of the VLA tests: a tiny synthetic dataset with reader-style items.

The items follow ``envs.dataset_reader.ActionChunkDataset``'s contract, and the actions are a
learnable function of the image (a coloured square's position) and the state, so overfitting
tests measure something real. Instruction embeddings are fixed random vectors put into an
``InstructionCache`` with the encoder disabled, so tests never load MiniLM.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from vla_fakes import INSTRUCTIONS, fake_instruction_cache

from vla.config import preset


class SyntheticChunks(Dataset):
    """``n`` reader-style items: 32x32 images, 7-D state, (horizon, 4) action chunks."""

    def __init__(self, n: int = 64, horizon: int = 4, seed: int = 0, episodes: int = 8):
        rng = np.random.default_rng(seed)
        self.horizon = horizon
        self.pos = rng.integers(2, 26, size=(n, 2))
        self.state = rng.normal(size=(n, 7)).astype(np.float32)
        self.task = rng.integers(0, len(INSTRUCTIONS), size=n)
        self.episode = np.arange(n) % episodes
        self.action_dim, self.state_dim, self.camera_keys = 4, 7, ["image"]
        acts = np.stack([self._chunk(i) for i in range(n)])
        flat = acts.reshape(-1, 4)
        self.stats = {"action": {"q01": np.quantile(flat, 0.01, 0),
                                 "q99": np.quantile(flat, 0.99, 0),
                                 "mean": flat.mean(0), "std": flat.std(0)},
                      "state": {"mean": self.state.mean(0), "std": self.state.std(0)}}

    def _chunk(self, i: int) -> np.ndarray:
        target = (self.pos[i] - 14) / 12.0
        steps = np.arange(self.horizon)[:, None] / self.horizon
        xy = np.tanh(target[None] * (1 - steps) - 0.3 * self.state[i, :2][None])
        z = np.full((self.horizon, 1), 0.5 if self.task[i] else -0.5)
        jaw = np.where(steps > 0.5, 1.0, -1.0)
        return np.concatenate([xy, z, jaw], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int) -> dict:
        img = np.zeros((32, 32, 3), np.uint8)
        x, y = self.pos[i]
        img[y - 2:y + 3, x - 2:x + 3, self.task[i]] = 255
        return {"image": torch.from_numpy(img), "state": torch.from_numpy(self.state[i]),
                "instruction": INSTRUCTIONS[self.task[i]],
                "actions": torch.from_numpy(self._chunk(i)),
                "action_is_pad": torch.zeros(self.horizon, dtype=torch.bool),
                "episode_index": int(self.episode[i]), "frame_index": i}


@pytest.fixture
def synthetic() -> SyntheticChunks:
    """A 64-item synthetic dataset (horizon 4)."""
    return SyntheticChunks()


@pytest.fixture
def make_model(synthetic):
    """Factory of tiny models with the synthetic dataset's statistics set."""
    from vla.model import VLAModel

    def make(head: str, seed: int = 0, **overrides) -> VLAModel:
        torch.manual_seed(seed)
        model = VLAModel(preset("tiny", head=head, **overrides),
                         instructions=fake_instruction_cache())
        model.set_stats(synthetic.stats, instructions=INSTRUCTIONS)
        return model

    return make
