"""Re-sweep the early exit of the shipped (teacher-mixed) students on fresh held-out demos.

Usage (this CPU, ~10 min; the demos take ~40 s):
    python experiments/checkpoints/make_default.py --collect 256 --collect-seed 3000000 \
        --targets-per-layout 1 --archive scratch/ee_fresh --out scratch/ee_fresh_out \
        --seeds 0 --workers 2
    python experiments/results/vla/session6/ee_resweep.py scratch/ee_fresh scratch/ck5 scratch/ckn8

The shipped students' early-exit rules were swept on the *unmixed* students (the archive's
held-out split lives on the GPU box). This sweeps both the plain students (ROOT_PLAIN) and the
mixed ones (ROOT_MIXED), with each seed's AR teacher as the reference, on 512 items of 256 new
expert episodes whose layouts (seeds 3,000,000+) no training demo used, and writes
``ee_resweep.json`` beside this script.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from experiments.provenance import provenance, write_json_atomic  # noqa: E402
from vla.checkpoint import from_pretrained  # noqa: E402
from vla.data import ChunkTensors  # noqa: E402
from vla.evaluate import action_error, eval_indices, sweep_early_exit  # noqa: E402


def fresh_data(archive: Path) -> ChunkTensors:
    """Every frame of the archive as one held-out set."""
    meta = json.loads((archive / "chunks_meta.json").read_text())
    a = np.load(archive / "chunks_all.npz")
    return ChunkTensors(images={"image": torch.from_numpy(a["image"])},
                        state=torch.from_numpy(a["state"]),
                        actions=torch.from_numpy(a["actions"]),
                        is_pad=torch.from_numpy(a["is_pad"]),
                        instr_index=torch.from_numpy(a["instr_index"]).long(),
                        instructions=meta["instructions"],
                        episode=torch.from_numpy(a["episode"]))


def main(archive: Path, mixed_root: Path, plain_root: Path, n_items: int = 512) -> None:
    """Sweep the plain and the mixed student of every training seed; print and write JSON."""
    torch.set_num_threads(1)
    data = fresh_data(archive)
    idx = eval_indices(data, n_items, seed=0)
    out = {"items": len(idx), "frames": len(data), "archive": str(archive), "seeds": {}}
    for seed in (0, 1, 2):
        teacher = from_pretrained(mixed_root / f"seed{seed}" / "ar")
        ar = action_error(teacher, data, idx, decoder="ar")
        row = {"ar_l1": ar["l1"]}
        for name, root in (("plain", plain_root), ("mixed", mixed_root)):
            folder = root / f"seed{seed}" / "cjacobi"
            student = from_pretrained(folder)
            stored = json.loads((folder / "early_exit.json").read_text())["student_sweep"]
            sweep = sweep_early_exit(student, data, idx, ar["l1"])
            chosen = next(c for c in sweep["curve"] if c["name"] == sweep["chosen"])
            used = next(c for c in sweep["curve"] if c["name"] == stored["chosen"])
            row[name] = {"chosen": sweep["chosen"], "nfe": chosen["nfe"], "l1": chosen["l1"],
                         "within_budget": sweep["within_budget"],
                         "shipped_rule": stored["chosen"], "shipped_rule_nfe": used["nfe"],
                         "shipped_rule_l1": used["l1"],
                         "shipped_rule_in_budget": used["l1"] <= 1.1 * ar["l1"],
                         "curve": sweep["curve"]}
            print(f"seed {seed} {name:<5}: chose {sweep['chosen']} ({chosen['nfe']:.2f} passes, "
                  f"l1 {chosen['l1']:.5f}); shipped rule {stored['chosen']} "
                  f"({used['nfe']:.2f} passes, l1 {used['l1']:.5f}); AR l1 {ar['l1']:.5f}, "
                  f"budget {1.1 * ar['l1']:.5f}", flush=True)
        out["seeds"][str(seed)] = row
    out["provenance"] = provenance(threads=1)
    write_json_atomic(Path(__file__).with_name("ee_resweep.json"), out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
