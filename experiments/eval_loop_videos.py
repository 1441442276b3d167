"""Side-by-side videos of closed-loop tasks, each panel labelled with the step it executes.

Usage: python -m experiments.eval_loop_videos --seeds 0 1 --out DIR --panel expert:grounded:expert
    --panel ar:grounded:CKPTS:ar --panel free:free:CKPTS:DECODER [--split heldout]

Every ``--panel LABEL:PLANNER:SKILL[:DECODER]`` runs the same task (env seed, split) through
:func:`experiments.eval_loop.run_task` with a frame recorded after every simulator step; the
panels are tiled in one mp4 per seed (``DIR/seed<S>.mp4``) under the task's instruction. Each
panel's label names the panel and the plan step it is executing (``put(red,purple)``); a
finished panel holds its last frame inside a green (task solved) or red (not solved) border.
The runs use the evaluation's seeds and seeding of the skill, so on the machine and software
that ran ``eval-loop`` a panel replays the recorded task; on another (a different torch or
MuJoCo build) a VLA's trajectory can diverge from the recorded one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from experiments.compare_videos import panel

_GREEN, _RED, _GREY = (40, 200, 60), (220, 40, 40), (90, 90, 90)
_LABEL_H, _BORDER, _SCALE = 14, 3, 2


def record(env: Any, seed: int, planner: Any, skill: Any, mode: str
           ) -> tuple[list[tuple[np.ndarray, str]], dict[str, Any]]:
    """Run one task, keeping ``(frame, plan step)`` after every simulator step, and its record."""
    from experiments.eval_loop import run_task

    frames: list[tuple[np.ndarray, str]] = []
    result = run_task(env, seed, planner, skill, mode=mode,
                      on_step=lambda step: frames.append((env.render(), step)))
    return frames, result.to_dict()


def tile_video(runs: dict[str, tuple[list[tuple[np.ndarray, str]], dict[str, Any]]],
               title: str, every: int = 2) -> list[np.ndarray]:
    """The tiled frames: one panel per run, every ``every``-th simulator step."""
    from PIL import Image, ImageDraw

    n = max(len(frames) for frames, _ in runs.values())
    out = []
    for t in [*range(0, n, every), n - 1]:
        panels = []
        for label, (frames, rec) in runs.items():
            frame, step = frames[min(t, len(frames) - 1)]
            colour = _GREY if t < len(frames) - 1 else (_GREEN if rec["success"] else _RED)
            panels.append(panel(frame, f"{label}: {step}", colour, scale=_SCALE))
        row = np.concatenate(panels, axis=1)
        band = Image.new("RGB", (row.shape[1], _LABEL_H + 4))
        ImageDraw.Draw(band).text((_BORDER, 3), title, fill=(255, 255, 255))
        out.append(np.concatenate([np.asarray(band), row], axis=0))
    return out


def write(seeds: list[int], panels: list[str], out: Path, split: str = "train") -> list[dict]:
    """Record every panel on every seed and write ``out/seed<S>.mp4``; returns the index."""
    from experiments.eval_loop import ExpertSkill, PolicySkill, default_planner, make_env
    from experiments.eval_summary import write_video

    env = make_env(split=split, images=True, render_mode="rgb_array")
    lm = default_planner()
    skills: dict[str, Any] = {}
    index = []
    for seed in seeds:
        runs = {}
        for text in panels:
            label, mode, skill, *decoder = text.split(":")
            key = f"{skill}:{decoder}"
            if key not in skills:
                if skill == "expert":
                    skills[key] = ExpertSkill(env, 0)
                else:
                    from policies.vla_policy import VLAPolicy

                    skills[key] = PolicySkill(VLAPolicy(skill, decoder[0]))
            runs[label] = record(env, seed, lm if mode != "oracle" else None, skills[key], mode)
        title = next(iter(runs.values()))[1]["instruction"]
        fps = env.metadata.get("render_fps", 25) / 2
        path = write_video(out / f"seed{seed}.mp4", tile_video(runs, title), fps=fps)
        index.append({"seed": seed, "video": path.name, "instruction": title,
                      "panels": {k: {"success": r["success"], "violation": r["violation"],
                                     "steps": r["steps"]} for k, (_, r) in runs.items()}})
    (out / "videos.json").write_text(json.dumps({"split": split, "panels": panels,
                                                 "videos": index}, indent=2) + "\n")
    return index


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--panel", action="append", required=True,
                   help="LABEL:PLANNER:SKILL[:DECODER] (repeat)")
    p.add_argument("--split", default="train")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    for entry in write(args.seeds, args.panel, args.out, args.split):
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
