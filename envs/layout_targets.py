"""Counterfactual targets: the same scene layout under several instructions.

Envs with ``target_choices()`` (the tabletop tasks) accept ``reset(options={"target": t})``,
which keeps the layout of ``seed`` and swaps what the instruction asks for. Demos of one layout
under K targets make the words the only thing that tells the demos apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def layout_targets(env: Any, seed: int, k: int) -> list[dict[str, Any]]:
    """The ``k`` distinct targets of layout ``seed``: its own first, then ``k - 1`` others.

    The others are drawn without replacement by ``numpy.random.default_rng(seed)``, so the
    choice is a function of the seed. ``env`` is reset to ``seed`` on the way.

    Raises:
        ValueError: If the env has no ``target_choices()`` or fewer than ``k`` targets.
    """
    base = env.unwrapped
    if not hasattr(base, "target_choices"):
        raise ValueError(f"targets_per_layout={k} needs an env with target_choices(); "
                         f"{type(base).__name__} has none")
    env.reset(seed=seed)
    own = base.target
    others = [t for t in base.target_choices() if t != own]
    if k - 1 > len(others):
        raise ValueError(f"targets_per_layout={k} exceeds the {len(others) + 1} targets of "
                         f"layout seed {seed}")
    picks = np.random.default_rng(seed).choice(len(others), k - 1, replace=False)
    return [own, *(others[i] for i in picks)]
