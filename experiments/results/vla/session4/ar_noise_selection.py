"""Summarize the AR input-noise selection runs (session 4) into ar_noise_selection.json.

Each run: `robodecode eval --policy CKPT/seed<S>/ar --decoder ar --episodes 100 --seed 7000
--workers 2 --k 8 --out scratch/sel/<variant>-s<S>` on this 2-core CPU. Env seeds 7000-7099 are
disjoint from the comparison's (1000 + 100000 * S + i, held-out + 50000), so choosing a variant
here does not tune on the reported numbers.
"""
import json
import sys
from pathlib import Path

from experiments.evaluate import load_records
from experiments.stats import mcnemar, wilson_interval

VARIANTS = {"ck3": 0.4, "ckn6": 0.6, "ckn8": 0.8}


def episodes(folder: Path) -> dict[int, bool]:
    """Success by env seed of one eval run folder."""
    return {r["seed"]: bool(r["success"]) for r in load_records(folder).values()}


def main(root: Path) -> None:
    """Pool each variant over its three training seeds; McNemar against the shipped 0.4."""
    runs = {v: {s: episodes(root / f"{v}-s{s}") for s in range(3)} for v in VARIANTS}
    out = {"command": "robodecode eval --policy CKPT/seed<S>/ar --decoder ar --episodes 100 "
                      "--seed 7000 --workers 2 --k 8", "machine": "2-core CPU", "variants": []}
    pooled = {}
    for v, noise in VARIANTS.items():
        pooled[v] = [ok for s in range(3) for _, ok in sorted(runs[v][s].items())]
        k, n = sum(pooled[v]), len(pooled[v])
        lo, hi = wilson_interval(k, n)
        out["variants"].append({
            "ar_input_noise": noise, "checkpoints": v, "pc_success": 100 * k / n,
            "ci_low": 100 * lo, "ci_high": 100 * hi, "episodes": n,
            "per_seed": [100 * sum(runs[v][s].values()) / len(runs[v][s]) for s in range(3)]})
    for v in ("ckn6", "ckn8"):
        test = mcnemar(pooled["ck3"], pooled[v])
        out[f"mcnemar_0.4_vs_{VARIANTS[v]}"] = {"only_0.4": test.only_a, "only_other": test.only_b,
                                               "p_value": test.p_value}
    text = json.dumps(out, indent=1)
    print(text)
    Path(__file__).with_suffix(".json").write_text(text + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "scratch/sel"))
