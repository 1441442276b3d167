"""Tiny random-weight VLA checkpoints for the fake reach env (no training, no MiniLM)."""

from pathlib import Path

import numpy as np

INSTRUCTIONS = ("reach the goal", "go to the goal")


def write_checkpoint_set(root: Path, heads: dict[str, str], horizon: int = 4) -> Path:
    """Save one tiny model per ``folder -> head`` under ``root`` (seeded: same weights)."""
    import torch

    from vla.checkpoint import save_pretrained
    from vla.config import preset
    from vla.encoders import InstructionCache
    from vla.model import VLAModel

    stats = {"action": {"q01": -np.ones(4), "q99": np.ones(4)},
             "state": {"mean": np.full(4, 0.5), "std": np.full(4, 0.3)}}
    for folder, head in heads.items():
        torch.manual_seed(0)
        cache = InstructionCache(allow_encoder=False)
        for text in INSTRUCTIONS:
            cache.put(text, torch.nn.functional.normalize(torch.randn(384), dim=0))
        model = VLAModel(preset("tiny", head=head, state_dim=4, action_dim=4, horizon=horizon),
                         instructions=cache)
        model.set_stats(stats, instructions=list(INSTRUCTIONS))
        save_pretrained(model, root / folder)
    return root
