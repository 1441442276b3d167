"""python -m experiments.studies.failure_modes CHECKPOINT_SET DECODER SEEDS  # [--out F].

Replay tabletop env seeds with one decoder and record what each episode grasped (why it
failed). ``CHECKPOINT_SET`` is a folder of head checkpoints (``ar/``, ``cjacobi/``, ``flow/``...;
e.g. ``experiments/checkpoints/TabletopPickPlace-v0/seed0``), ``DECODER`` a decoder spec,
``SEEDS`` comma-separated env seeds. Each episode runs as ``robodecode eval`` does (k = 8, whole
chunks, no latency, 1 torch thread) and gives one JSON line: success, steps, the named block,
for how many steps it (and any other block) was grasped, the closest the gripper came to it,
and its final distance to the named zone. Lines go to stdout and, with ``--out``, to a file.
"""

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import torch

import envs  # noqa: F401 - registers the ids
from envs.tabletop import instructions as ins
from policies.vla_policy import VLAPolicy
from vla.decoders import parse_decoder_spec

ENV_ID = "robodecode/TabletopPickPlace-v0"


def replay(checkpoints: Path, decoder: str, seeds: list[int], k: int = 8,
           env_id: str = ENV_ID):
    """Yield one record per seed (see the module docstring)."""
    spec = parse_decoder_spec(decoder)
    env = gym.make(env_id)
    u = env.unwrapped
    policy = VLAPolicy(checkpoints, spec)
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        policy.reset()
        target = u.task_spec.block
        grasped = dict.fromkeys(ins.BLOCK_COLOURS, 0)
        done, steps, min_reach = False, 0, float("inf")
        while not done:
            for action in policy.infer(obs)["actions"][:k]:
                obs, _, terminated, truncated, info = env.step(action)
                steps += 1
                for colour in ins.BLOCK_COLOURS:
                    grasped[colour] += int(u.is_grasped(colour))
                min_reach = min(min_reach, -info["reward_reach"])
                done = terminated or truncated
                if done:
                    break
        yield {"seed": seed, "success": bool(info["is_success"]), "steps": steps,
               "target": target, "grasped_target_steps": grasped[target],
               "grasped_other": {c: n for c, n in grasped.items() if c != target and n},
               "min_reach": round(min_reach, 3),
               "final_place_dist": round(-info["reward_place"], 3)}
    env.close()


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse the command line and replay the seeds."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("checkpoints", type=Path, help="folder of head checkpoints (ar/, flow/, ...)")
    p.add_argument("decoder", help="decoder spec, parsed by vla.decoders")
    p.add_argument("seeds", help="comma-separated env seeds")
    p.add_argument("--k", type=int, default=8, help="actions executed per chunk")
    p.add_argument("--out", type=Path, help="also write the JSON lines here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for row in replay(args.checkpoints, args.decoder, [int(s) for s in args.seeds.split(",")],
                      args.k):
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
