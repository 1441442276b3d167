"""Replay env seeds with one decoder and record what each episode grasped (why it failed).

Usage (from the repository root)::

    python experiments/results/TabletopPickPlace-v0/diagnosis/failure_modes.py \
        experiments/checkpoints/TabletopPickPlace-v0/seed0 ar 1001,1023,... > ar.jsonl

Each episode runs as ``robodecode eval`` does (k = 8, whole chunks, no latency) and prints one
JSON line: success, steps, the named block, for how many steps it (and any other block) was
grasped, the closest the gripper came to it, and its final distance to the named zone.
"""

import json
import sys

import gymnasium as gym
import torch

import envs  # noqa: F401 - registers the ids
from envs.tabletop import instructions as ins
from policies.vla_policy import VLAPolicy


def replay(checkpoint: str, decoder: str, seeds: list[int], k: int = 8) -> None:
    """Print one JSON line per seed (see the module docstring)."""
    env = gym.make("robodecode/TabletopPickPlace-v0")
    u = env.unwrapped
    policy = VLAPolicy(checkpoint, decoder)
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
        print(json.dumps({
            "seed": seed, "success": bool(info["is_success"]), "steps": steps, "target": target,
            "grasped_target_steps": grasped[target],
            "grasped_other": {c: n for c, n in grasped.items() if c != target and n},
            "min_reach": round(min_reach, 3), "final_place_dist": round(-info["reward_place"], 3),
        }), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    replay(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")])
