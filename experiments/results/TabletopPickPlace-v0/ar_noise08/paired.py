"""Paired tests of the input-noise-0.8 AR against the committed decoders, same 600 episodes.

Reads the eval-run cache that `robodecode compare` fills (scratch/compare/runs, keyed by each
checkpoint's weight hash), so it needs the commands in ../NOTES.md run first; writes paired.json.
"""
import json
from pathlib import Path

from experiments.compare import fingerprint
from experiments.evaluate import load_records
from experiments.stats import mcnemar

RUNS = Path("scratch/compare/runs/TabletopPickPlace-v0")
PAIRS = {"ar (noise 0.8)": ("scratch/ckn8", "ar", "ar"),
         "jacobi+ee (noise 0.8)": ("scratch/ckn8", "ar", "jacobi+ee"),
         "ar (noise 0.4, committed)": ("scratch/ck3", "ar", "ar"),
         "cjacobi+ee (committed)": ("scratch/ck3", "cjacobi", "cjacobi+ee"),
         "flow@2 (committed)": ("scratch/ck3", "flow", "flow@2"),
         "oft (committed)": ("scratch/ck3", "oft", "oft")}


def outcomes(root: str, head: str, decoder: str) -> list[bool]:
    """Success per episode of one decoder, training seeds 0-2, sorted by env seed."""
    flat = []
    for s in range(3):
        name = f"{decoder}-train-s{1000 + 100000 * s}-n200"
        run = RUNS / fingerprint(Path(root, f"seed{s}", head)) / name
        rows = sorted(load_records(run).values(), key=lambda r: r["seed"])
        flat += [bool(r["success"]) for r in rows]
    return flat


def main() -> None:
    """Print and write the paired tests."""
    results = {name: outcomes(*spec) for name, spec in PAIRS.items()}
    base = results["ar (noise 0.8)"]
    out = {"episodes": len(base), "success": {k: 100 * sum(v) / len(v) for k, v in results.items()},
           "vs_ar_noise_0.8": {}}
    for name, other in results.items():
        if name != "ar (noise 0.8)":
            t = mcnemar(base, other)
            out["vs_ar_noise_0.8"][name] = {"only_ar_0.8": t.only_a, "only_other": t.only_b,
                                            "p_value": t.p_value}
    text = json.dumps(out, indent=1)
    print(text)
    Path(__file__).with_name("paired.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
