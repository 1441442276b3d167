"""Rollout videos of a comparison: every decoder side by side on the same episode.

Usage: robodecode compare ... --videos 2   (writes OUT/videos/seed<S>.mp4, one per env seed)

The first ``videos`` train-condition episodes of the first training seed are replayed for every
decoder with frames recorded (the same env seeds, checkpoints and k as the evaluation, so each
panel is the evaluated episode; ``matches_eval`` in ``compare.json`` says whether the replay
reproduced the recorded outcome). Panels are tiled in one mp4 per seed, each labelled with its
decoder; a finished panel holds its last frame inside a green (success) or red (failure) frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from experiments.compare_config import CompareConfig

_GREEN, _RED, _GREY = (40, 200, 60), (220, 40, 40), (90, 90, 90)
_LABEL_H = 14  # pixels of the label band above each panel
_BORDER = 3


def panel(frame: np.ndarray, label: str, colour: tuple[int, int, int],
          scale: int = 1) -> np.ndarray:
    """``frame`` enlarged ``scale`` times, in a coloured border, with ``label`` above it."""
    from PIL import Image, ImageDraw

    if scale > 1:
        frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    h, w = frame.shape[:2]
    out = np.zeros((h + _LABEL_H + 2 * _BORDER, w + 2 * _BORDER, 3), np.uint8)
    out[_LABEL_H:] = colour
    out[_LABEL_H + _BORDER:_LABEL_H + _BORDER + h, _BORDER:_BORDER + w] = frame
    img = Image.fromarray(out)
    ImageDraw.Draw(img).text((_BORDER, 1), label, fill=(255, 255, 255))
    return np.asarray(img)


def tile(frames: dict[str, np.ndarray], status: dict[str, bool | None], title: str = "",
         columns: int = 4) -> np.ndarray:
    """Tile one frame per decoder into a grid under ``title``.

    ``status`` per decoder: True / False once its episode ended (success / failure), None while
    it runs.
    """
    from PIL import Image, ImageDraw

    colour = {True: _GREEN, False: _RED, None: _GREY}
    panels = [panel(f, name, colour[status[name]]) for name, f in frames.items()]
    rows = math.ceil(len(panels) / columns)
    blank = np.zeros_like(panels[0])
    panels += [blank] * (rows * columns - len(panels))
    grid = np.concatenate([np.concatenate(panels[r * columns:(r + 1) * columns], axis=1)
                           for r in range(rows)], axis=0)
    band = Image.new("RGB", (grid.shape[1], _LABEL_H + 4))
    ImageDraw.Draw(band).text((_BORDER, 3), title, fill=(255, 255, 255))
    return np.concatenate([np.asarray(band), grid], axis=0)


def write_videos(cfg: CompareConfig, sets: dict[int, Path], runs: dict[str, Any], out: Path,
                 log=print) -> list[dict[str, Any]]:
    """Replay and tile the first ``cfg.videos`` train episodes; returns one entry per seed.

    Args:
        cfg: The comparison's settings (``decoders``, ``train_seeds``, ``videos``, ``k``, ...).
        sets: Training seed -> checkpoint set.
        runs: ``runs[decoder]["train"][training seed]`` eval summaries (for ``matches_eval``).
        out: Results folder; videos go to ``out/videos/``.
        log: Progress messages.
    """
    import gymnasium as gym
    import torch

    import envs  # noqa: F401 - registers the ids
    from experiments.eval_summary import write_video
    from policies.rollout import control_dt, rollout
    from policies.vla_policy import VLAPolicy

    first = cfg.train_seeds[0]
    seeds = [cfg.env_seed(first) + i for i in range(cfg.videos)]
    env = gym.make(cfg.env_id, render_mode="rgb_array")
    fps = env.metadata.get("render_fps") or 1.0 / control_dt(env)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    episodes: dict[int, dict[str, Any]] = {s: {} for s in seeds}
    titles = {s: f"env seed {s}: {env.reset(seed=s)[0]['instruction']}" for s in seeds}
    try:
        for decoder in cfg.decoders:
            policy = VLAPolicy(sets[first], decoder)
            for s in seeds:
                episodes[s][decoder] = rollout(env, policy, s, k=cfg.k, video=True)
            log(f"  video {decoder:<12} " + " ".join(
                f"{s}:{'ok' if episodes[s][decoder].success else 'fail'}" for s in seeds))
    finally:
        torch.set_num_threads(threads)
        env.close()
    entries = []
    for s, by_decoder in episodes.items():
        length = max(len(r.frames) for r in by_decoder.values())
        frames = []
        for t in range(length):
            now = {d: r.frames[min(t, len(r.frames) - 1)] for d, r in by_decoder.items()}
            status = {d: (r.success if t >= len(r.frames) - 1 else None)
                      for d, r in by_decoder.items()}
            frames.append(tile(now, status, titles[s]))
        path = write_video(Path(out) / "videos" / f"seed{s}.mp4", frames, fps=fps)
        recorded = {d: _recorded_success(runs[d]["train"].get(first), s) for d in by_decoder}
        entries.append({"seed": s, "file": str(path.relative_to(out)), "title": titles[s],
                        "success": {d: r.success for d, r in by_decoder.items()},
                        "matches_eval": {d: recorded[d] is None or recorded[d] == r.success
                                         for d, r in by_decoder.items()}})
    return entries


def _recorded_success(summary: dict[str, Any] | None, seed: int) -> bool | None:
    """The evaluated outcome of env seed ``seed`` (None if that episode was not run)."""
    for e in (summary or {}).get("per_episode", []):
        if e["seed"] == seed:
            return bool(e["success"])
    return None
