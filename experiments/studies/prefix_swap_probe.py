"""python -m experiments.studies.prefix_swap_probe CHECKPOINT  # [--out F] [--heading-seeds A-B].

Grounding checks of one head checkpoint (the committed run: the shipped OFT head,
``experiments/checkpoints/TabletopPickPlace-v0/seed0/oft``):

* prefix-swap probe: on the first observation of env seeds 2000-2015, replace one group of
  prefix tokens (image grid, keypoints, language, state) by the same group of another
  observation (the batch rolled by one) and report the mean |change| of the predicted chunk
  (normalized units; ``chunk_mean_abs`` is the chunk's own magnitude);
* target heading (``experiments.grounding_probe.target_heading``): after 16 control steps,
  is the gripper nearest the named block (chance 0.25)?

Decodes with the head's default decoder; writes ``--out`` (default
``experiments/results/instruction-grounding/probe_shipped_oft.json``).
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402,F401 - registers the ids
from envs.files import write_json_atomic  # noqa: E402
from experiments.grounding_probe import target_heading  # noqa: E402
from vla.checkpoint import from_pretrained  # noqa: E402

ENV_ID = "robodecode/TabletopPickPlace-v0"
DEFAULT_OUT = (Path(__file__).resolve().parents[1] / "results" / "instruction-grounding"
               / "probe_shipped_oft.json")


def token_groups(config) -> dict[str, slice]:
    """Prefix positions of each token group: [image grid | keypoints | language | state]."""
    grid, kp = config.image_grid ** 2, config.image_keypoints
    lang = config.prefix_len - 1 - grid - kp
    return {"image grid tokens": slice(0, grid), "keypoint tokens": slice(grid, grid + kp),
            "language token": slice(grid + kp, grid + kp + lang),
            "state token": slice(config.prefix_len - 1, config.prefix_len)}


@torch.no_grad()
def swap_probe(model, observations: list[dict]) -> dict:
    """Mean |chunk change| when one token group comes from another observation."""
    batch = {"image": torch.stack([torch.as_tensor(o["image"]) for o in observations]),
             "state": torch.stack([torch.as_tensor(o["state"]) for o in observations]),
             "instruction": [o["instruction"] for o in observations]}
    decoder, n = model.head.decoders[0], len(observations)
    prefix = model.prefix_tokens(model.prepare(batch))

    def chunk(p: torch.Tensor) -> torch.Tensor:
        return model.head.decode(model, model.backbone.encode_prefix(p), n, decoder)[0]

    base = chunk(prefix)
    swap = {}
    for name, sl in token_groups(model.config).items():
        if sl.stop > sl.start:
            other = prefix.clone()
            other[:, sl] = prefix.roll(1, 0)[:, sl]
            swap[name] = float((chunk(other) - base).abs().mean())
    return {"swap": swap, "chunk_mean_abs": float(base.abs().mean())}


def probe(checkpoint: Path, obs_seeds: list[int], heading_seeds: list[int]) -> dict:
    """Both checks of one checkpoint (see the module docstring)."""
    torch.set_num_threads(1)
    model = from_pretrained(checkpoint).eval()
    env = gym.make(ENV_ID)
    result = {"checkpoint": str(checkpoint),
              **swap_probe(model, [env.reset(seed=s)[0] for s in obs_seeds])}
    h = target_heading(model, env, heading_seeds)
    key = f"target_heading_seeds_{heading_seeds[0]}_{heading_seeds[-1]}"
    result[key] = {k: h[k] for k in ("nearest_is_target", "mean_d_target", "mean_d_others",
                                     "steps")}
    env.close()
    return result


def _seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, probe, print and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("checkpoint", type=Path, help="one head's checkpoint folder")
    p.add_argument("--obs-seeds", type=_seed_range, default=_seed_range("2000-2015"),
                   help="env seeds whose first observations the swap probe uses (A-B)")
    p.add_argument("--heading-seeds", type=_seed_range, default=_seed_range("100-139"),
                   help="env seeds of the target-heading check (A-B)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    result = probe(args.checkpoint, args.obs_seeds, args.heading_seeds)
    write_json_atomic(args.out, result, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
