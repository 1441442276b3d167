"""One-off closed-loop check: success of (checkpoint, decoder) pairs on env seeds 100.. .

python check.py '[["CKPT", "SPEC"], ...]' N OUT.json WORKERS   (env K = actions per chunk, default
4; env E = ACT ensembling rate, default off)
"""

import json
import os
import sys
from multiprocessing import get_context

_CACHE: dict = {}


def work(args):
    """Run one episode of one (checkpoint, decoder) pair; the policy and env are cached."""
    ckpt, spec, seed = args
    os.environ["MUJOCO_GL"] = "egl"
    import gymnasium as gym
    import torch

    import envs  # noqa: F401
    from policies.rollout import rollout
    from policies.vla_policy import VLAPolicy

    torch.set_num_threads(1)
    if (ckpt, spec) not in _CACHE:
        _CACHE[ckpt, spec] = (VLAPolicy(ckpt, spec), gym.make("robodecode/TabletopPickPlace-v0"))
    pol, env = _CACHE[ckpt, spec]
    pol.reset(seed=seed)
    ens = os.environ.get("E")
    rec = rollout(env, pol, seed, k=int(os.environ.get("K", 4)),
                  ensemble_decay=float(ens) if ens else None)
    return {"ckpt": ckpt, "spec": spec, "seed": seed, "success": bool(rec.success),
            "steps": rec.steps, "failure": rec.failure}


if __name__ == "__main__":
    pairs = json.loads(sys.argv[1])
    n, out, workers = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    jobs = [(c, s, 100 + i) for c, s in pairs for i in range(n)]
    res: dict = {}
    with get_context("spawn").Pool(workers) as pool:
        for r in pool.imap_unordered(work, jobs, chunksize=2):
            res.setdefault(f"{r['ckpt']}|{r['spec']}", []).append(r)
    summ = {k: {"success": sum(r["success"] for r in v) / len(v), "n": len(v),
                "fail": sorted({str(r["failure"]) for r in v})[:3]} for k, v in res.items()}
    print(json.dumps(summ, indent=1))
    with open(out, "w") as f:
        json.dump({"summary": summ, "rows": res}, f)
