"""Summarize the distillation-length selection runs (session 5) into cjacobi_selection.json.

Students of the input-noise-0.8 AR heads (session 4's `scratch/ckn8/seed<S>/ar`), distilled on an
H100 with the session-3 recipe (1,500 steps, `scratch/ckn8`), with 3,000 steps (`scratch/ckn8b`)
and with 1,500 steps keeping the teacher's input noise and image shift (`scratch/ckn8c`,
`DistillConfig(keep_input_noise=True, augment_shift=4)`), each evaluated with
`cjacobi_selection.sh` on env seeds 7000-7099, disjoint from the comparison's; the teacher's own
runs on those seeds are session 4's (`scratch/sel/ckn8-s<S>`). Last, the 1,500-step students
moved halfway back towards their teachers in weight space (`wise.py 0.5`, `scratch/ckw0.5`), and,
after that choice was shipped, the curve around it (`wise.py 0.75` and `wise.py 0.25`).
"""
import json
import sys
from pathlib import Path

from experiments.evaluate import load_records
from experiments.stats import mcnemar, wilson_interval

RUNS = {"ar (teacher)": "ckn8-s{}", "cjacobi+ee, 1500 steps": "cj-ckn8-s{}",
        "cjacobi+ee, 3000 steps": "cj-ckn8b-s{}",
        "cjacobi+ee, 1500 steps, teacher's input noise + image shift kept": "cj-ckn8c-s{}",
        "cjacobi (no early exit), 1500 steps": "cjx-ckn8-s{}",
        "cjacobi+ee, 1500 steps, mixed 0.5 with the teacher (shipped)": "cj-ckw0.5-s{}",
        "cjacobi+ee, 1500 steps, teacher_mix 0.25 (after the choice)": "cj-ckw0.75-s{}",
        "cjacobi+ee, 1500 steps, teacher_mix 0.75 (after the choice)": "cj-ckw0.25-s{}"}


def main(root: Path) -> None:
    """Pool each variant over training seeds 0-2; McNemar of each student against the teacher."""
    out = {"command": "robodecode eval --policy CKPT/seed<S>/{ar,cjacobi} --decoder "
                      "{ar,cjacobi+ee,cjacobi} --episodes 100 --seed 7000 --workers 2 --k 8",
           "machine": "2-core CPU", "variants": []}
    pooled = {}
    for name, pattern in RUNS.items():
        records = [load_records(root / pattern.format(s)) for s in range(3)]
        pooled[name] = [bool(r[k]["success"]) for r in records for k in sorted(r)]
        passes = [c for r in records for e in r.values() for c in e.get("chunk_nfe", [])]
        k, n = sum(pooled[name]), len(pooled[name])
        lo, hi = wilson_interval(k, n)
        out["variants"].append({
            "variant": name, "pc_success": 100 * k / n, "ci_low": 100 * lo, "ci_high": 100 * hi,
            "episodes": n, "per_seed": [100 * sum(e["success"] for e in r.values()) / len(r)
                                        for r in records],
            "nfe_per_chunk": sum(passes) / len(passes) if passes else None})
    teacher = pooled["ar (teacher)"]
    for name in list(RUNS)[1:]:
        test = mcnemar(teacher, pooled[name])
        out[f"mcnemar_ar_vs_{name}"] = {"only_ar": test.only_a, "only_student": test.only_b,
                                        "p_value": test.p_value}
    text = json.dumps(out, indent=1)
    print(text)
    Path(__file__).with_suffix(".json").write_text(text + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "scratch/sel"))
