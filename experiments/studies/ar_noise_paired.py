"""python -m experiments.studies.ar_noise_paired  # writes ar-input-noise/paired.json.

Paired tests of the input-noise-0.8 AR against every decoder of the earlier (input-noise-0.4)
checkpoint set, on the same 600 episodes (200 env seeds x training seeds 0, 1, 2, train
instructions). Reads only the committed ``compare.json`` files (each records every episode's
outcome) and writes ``experiments/results/ar-input-noise/paired.json``: success per decoder and
McNemar (mid-p) of the reference decoder (the first set's ``ar``) against each other decoder,
counting the episodes only it / only the other solved.
"""

import argparse
import json
from pathlib import Path

from envs.files import write_json_atomic
from experiments.stats import mcnemar, pair_by_seed

RESULTS = Path(__file__).resolve().parents[1] / "results" / "ar-input-noise"
DEFAULT_SETS = (f"0.8 AR set={RESULTS / 'compare.json'}",
                f"0.4 AR set={RESULTS / 'noise04-headline' / 'compare.json'}")
DEFAULT_OUT = RESULTS / "paired.json"


def outcomes(compare_json: Path, condition: str = "train") -> dict[str, dict[int, bool]]:
    """Decoder label -> {env seed: success} over every training seed of one comparison."""
    data = json.loads(Path(compare_json).read_text())
    out: dict[str, dict[int, bool]] = {}
    for decoder, by_condition in data["episodes"].items():
        runs = by_condition.get(condition, {})
        out[decoder] = {int(seed): bool(ok) for episodes in runs.values() for seed, ok in episodes}
    return out


def paired(sets: list[tuple[str, Path]], reference: str = "ar",
           condition: str = "train") -> dict:
    """Success of every decoder of every set and McNemar of the first set's ``reference``."""
    runs = {f"{decoder} ({name})": seeds for name, path in sets
            for decoder, seeds in outcomes(path, condition).items() if seeds}
    ref_label = f"{reference} ({sets[0][0]})"
    base = runs[ref_label]
    out = {"episodes": len(base), "condition": condition, "reference": ref_label,
           "files": {name: _repo_relative(path) for name, path in sets},
           "success": {k: 100 * sum(v.values()) / len(v) for k, v in runs.items()},
           "vs_reference": {}}
    for label, other in runs.items():
        if label != ref_label:
            a, b = pair_by_seed(base, other)
            test = mcnemar(a, b)
            out["vs_reference"][label] = {"pairs": len(a), "only_reference": test.only_a,
                                          "only_other": test.only_b, "p_value": test.p_value}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, compute, print and write the paired tests."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--set", action="append", dest="sets", metavar="NAME=COMPARE_JSON",
                   help="a checkpoint set's compare.json; the first holds the reference "
                        "(default: the 0.8 and the 0.4 AR sets in experiments/results)")
    p.add_argument("--reference", default="ar", help="decoder of the first set to test against")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    sets = [(name, Path(path)) for name, _, path in
            (s.partition("=") for s in (args.sets or DEFAULT_SETS))]
    result = paired(sets, args.reference)
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))
    return result


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (stable across checkouts)."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
