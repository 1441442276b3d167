"""python -m experiments.studies.ee_resweep ARCHIVE MIXED_SET PLAIN_SET  # [--items 512].

Re-sweep the Jacobi early exit of distilled students on fresh held-out demos. ``ARCHIVE`` is a
chunk archive of ``make_default.py --collect`` (``chunks_all.npz`` + ``chunks_meta.json``), used
whole as one held-out set; ``MIXED_SET`` and ``PLAIN_SET`` hold ``seed<S>/ar`` and
``seed<S>/cjacobi`` checkpoints (the shipped teacher-mixed students and the plain ones). For each
training seed the reference is the AR teacher's greedy action error (``MIXED_SET/seed<S>/ar``);
each student's sweep (``vla.evaluate.sweep_early_exit``: exact, unchanged tail, tol 1/2/4,
max 1-12 iterations) picks the cheapest rule within 1.1x of it and is compared with the rule
stored in the student's ``early_exit.json`` (the one shipped). The committed run (~25 min on a
2-core CPU; demos of layouts no training demo used, collect seeds from 3,000,000)::

    python experiments/checkpoints/make_default.py --collect 256 --collect-seed 3000000 \
        --targets-per-layout 1 --archive scratch/ee_fresh --out scratch/ee_fresh_out \
        --seeds 0 --workers 2
    python -m experiments.studies.ee_resweep scratch/ee_fresh scratch/ck5 scratch/ckn8

Writes ``--out`` (default ``experiments/results/early-exit/ee_resweep.json``).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from envs.files import write_json_atomic
from experiments.provenance import provenance
from vla.checkpoint import from_pretrained
from vla.data import ChunkTensors
from vla.evaluate import action_error, eval_indices, sweep_early_exit

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "early-exit" / "ee_resweep.json"
BUDGET = 1.1
"""A rule is within budget when its action error is at most this times the teacher's."""


def load_archive(archive: Path) -> ChunkTensors:
    """Every frame of a chunk archive as one held-out set."""
    meta = json.loads((archive / "chunks_meta.json").read_text())
    a = np.load(archive / "chunks_all.npz")
    return ChunkTensors(images={"image": torch.from_numpy(a["image"])},
                        state=torch.from_numpy(a["state"]),
                        actions=torch.from_numpy(a["actions"]),
                        is_pad=torch.from_numpy(a["is_pad"]),
                        instr_index=torch.from_numpy(a["instr_index"]).long(),
                        instructions=meta["instructions"],
                        episode=torch.from_numpy(a["episode"]))


def resweep_student(folder: Path, data: ChunkTensors, idx: list[int], ar_l1: float) -> dict:
    """One student's fresh sweep beside the rule it ships with."""
    stored = json.loads((folder / "early_exit.json").read_text())["student_sweep"]
    sweep = sweep_early_exit(from_pretrained(folder), data, idx, ar_l1, budget=BUDGET)
    chosen = next(c for c in sweep["curve"] if c["name"] == sweep["chosen"])
    used = next(c for c in sweep["curve"] if c["name"] == stored["chosen"])
    return {"chosen": sweep["chosen"], "nfe": chosen["nfe"], "l1": chosen["l1"],
            "within_budget": sweep["within_budget"], "shipped_rule": stored["chosen"],
            "shipped_rule_nfe": used["nfe"], "shipped_rule_l1": used["l1"],
            "shipped_rule_in_budget": used["l1"] <= BUDGET * ar_l1, "curve": sweep["curve"]}


def resweep(data: ChunkTensors, mixed: Path, plain: Path, seeds: list[int],
            n_items: int) -> dict:
    """Sweep the plain and the mixed student of every training seed (see the docstring)."""
    idx = eval_indices(data, n_items, seed=0)
    out = {"items": len(idx), "frames": len(data), "seeds": {}}
    for seed in seeds:
        teacher = from_pretrained(mixed / f"seed{seed}" / "ar")
        ar_l1 = action_error(teacher, data, idx, decoder="ar")["l1"]
        row = {"ar_l1": ar_l1}
        for name, root in (("plain", plain), ("mixed", mixed)):
            row[name] = r = resweep_student(root / f"seed{seed}" / "cjacobi", data, idx, ar_l1)
            print(f"seed {seed} {name:<5}: chose {r['chosen']} ({r['nfe']:.2f} passes, "
                  f"l1 {r['l1']:.5f}); shipped rule {r['shipped_rule']} "
                  f"({r['shipped_rule_nfe']:.2f} passes, l1 {r['shipped_rule_l1']:.5f}); "
                  f"AR l1 {ar_l1:.5f}, budget {BUDGET * ar_l1:.5f}", flush=True)
        out["seeds"][str(seed)] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, sweep, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("archive", type=Path, help="chunk archive (chunks_all.npz, chunks_meta.json)")
    p.add_argument("mixed", type=Path, help="checkpoint sets with the shipped (mixed) students")
    p.add_argument("plain", type=Path, help="checkpoint sets with the plain students")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--items", type=int, default=512, help="held-out items swept")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = resweep(load_archive(args.archive), args.mixed, args.plain, args.seeds, args.items)
    out["archive"] = str(args.archive)
    out["provenance"] = provenance(threads=1)
    write_json_atomic(args.out, out)
    return out


if __name__ == "__main__":
    main()
