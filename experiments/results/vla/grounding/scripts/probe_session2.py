"""Session-2 grounding checks of the shipped OFT head: prefix-swap probe + target heading.

python experiments/results/vla/grounding/scripts/probe_session2.py CKPT OUT.json
"""
import json
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402,F401
from experiments.grounding_probe import target_heading  # noqa: E402
from vla.checkpoint import from_pretrained  # noqa: E402

torch.set_num_threads(1)
m = from_pretrained(sys.argv[1]).eval()
cfg = m.config
env = gym.make("robodecode/TabletopPickPlace-v0")
obs = [env.reset(seed=2000 + i)[0] for i in range(16)]
batch = {"image": torch.stack([torch.as_tensor(o["image"]) for o in obs]),
         "state": torch.stack([torch.as_tensor(o["state"]) for o in obs]),
         "instruction": [o["instruction"] for o in obs]}
grid, kp = cfg.image_grid ** 2, cfg.image_keypoints
groups = {"image grid tokens": slice(0, grid), "keypoint tokens": slice(grid, grid + kp),
          "language token": slice(grid + kp, grid + kp + cfg.lang_tokens),
          "state token": slice(cfg.prefix_len - 1, cfg.prefix_len)}
res = {"checkpoint": sys.argv[1], "swap": {}}
with torch.no_grad():
    pre = m.prefix_tokens(m.prepare(batch))

    def chunk(p):  # noqa: D103 - the one-pass chunk of a prefix
        return m.oft_chunk(m.backbone.encode_prefix(p), p.shape[0])

    base = chunk(pre)
    res["chunk_mean_abs"] = float(base.abs().mean())
    for name, sl in groups.items():
        if sl.stop > sl.start:
            p2 = pre.clone()
            p2[:, sl] = pre.roll(1, 0)[:, sl]  # this group from another observation
            res["swap"][name] = float((chunk(p2) - base).abs().mean())
print(json.dumps(res["swap"]), res["chunk_mean_abs"], flush=True)
h = target_heading(m, env, list(range(100, 140)))
res["target_heading_seeds_100_139"] = {k: h[k] for k in ("nearest_is_target", "mean_d_target",
                                                          "mean_d_others", "steps")}
print(json.dumps(res["target_heading_seeds_100_139"]), flush=True)
with open(sys.argv[2], "w") as f:
    json.dump(res, f, indent=1)
