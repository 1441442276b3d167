"""python -m experiments.studies.selection RUNS --preset PRESET  # [--out SELECTION_JSON].

Pool closed-loop selection runs over training seeds and test each variant against a reference.
``RUNS`` holds one ``robodecode eval`` output folder per variant and training seed (e.g.
``RUNS/ckn8-s0``), made on env seeds 7000-7099, which the comparison never uses (it uses
``1000 + 100000 x training seed + i``, held-out ``+ 50000``), so choosing a variant here does not
tune on reported numbers. Each run::

    robodecode eval --policy CKPT/seed<S>/<head folder> --decoder SPEC --episodes 100 \
        --seed 7000 --workers 2 --k 8 --out RUNS/<variant>-s<S>

For every variant: success pooled over the training seeds (95% Wilson interval), per seed,
passes per chunk; McNemar (mid-p) against the reference on the same env seeds. Presets name
the committed studies' run folders (``experiments/results/ar-input-noise/`` and
``experiments/results/cjacobi-selection/``; PRESET is ``ar-input-noise`` or ``cjacobi``);
``--variant NAME=PATTERN`` (PATTERN with ``{seed}``; the first is the reference) names others.
"""

import argparse
import json
from pathlib import Path

from envs.files import write_json_atomic
from experiments.evaluate import load_records
from experiments.stats import mcnemar, pair_by_seed, wilson_interval

PRESETS: dict[str, dict[str, str]] = {
    "ar-input-noise": {  # the first entry is the reference
        "ar_input_noise 0.4": "ck3-s{seed}",
        "ar_input_noise 0.6": "ckn6-s{seed}",
        "ar_input_noise 0.8": "ckn8-s{seed}"},
    "cjacobi": {  # the names of the committed cjacobi-selection/selection.json
        "ar (teacher)": "ckn8-s{seed}",
        "cjacobi+ee, 1500 steps": "cj-ckn8-s{seed}",
        "cjacobi+ee, 3000 steps": "cj-ckn8b-s{seed}",
        "cjacobi+ee, 1500 steps, teacher's input noise + image shift kept": "cj-ckn8c-s{seed}",
        "cjacobi (no early exit), 1500 steps": "cjx-ckn8-s{seed}",
        "cjacobi+ee, 1500 steps, mixed 0.5 with the teacher (shipped)": "cj-ckw0.5-s{seed}",
        "cjacobi+ee, 1500 steps, teacher_mix 0.25 (after the choice)": "cj-ckw0.75-s{seed}",
        "cjacobi+ee, 1500 steps, teacher_mix 0.75 (after the choice)": "cj-ckw0.25-s{seed}"},
}
RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULT_OUT = {"ar-input-noise": RESULTS / "ar-input-noise" / "selection.json",
               "cjacobi": RESULTS / "cjacobi-selection" / "selection.json"}


def summarize(runs: Path, variants: dict[str, str], seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Pool each variant's runs; the first variant is the reference of the paired tests."""
    out: dict = {"runs": str(runs), "variants": [], "vs_reference": {}}
    by_seed: dict[str, dict[int, bool]] = {}
    for name, pattern in variants.items():
        records = [load_records(runs / pattern.format(seed=s)) for s in seeds]
        if not all(records):
            missing = [pattern.format(seed=s) for s, r in zip(seeds, records, strict=True) if not r]
            raise FileNotFoundError(f"no episodes recorded in {runs} / {missing}")
        by_seed[name] = {int(e["seed"]): bool(e["success"]) for r in records for e in r.values()}
        passes = [c for r in records for e in r.values() for c in e.get("chunk_nfe", [])]
        k, n = sum(by_seed[name].values()), len(by_seed[name])
        lo, hi = wilson_interval(k, n)
        out["variants"].append({
            "variant": name, "runs": pattern, "pc_success": 100 * k / n, "ci_low": 100 * lo,
            "ci_high": 100 * hi, "episodes": n,
            "per_seed": [100 * sum(bool(e["success"]) for e in r.values()) / len(r)
                         for r in records],
            "nfe_per_chunk": sum(passes) / len(passes) if passes else None})
    reference = next(iter(variants))
    out["reference"] = reference
    for name in list(variants)[1:]:
        test = mcnemar(*pair_by_seed(by_seed[reference], by_seed[name]))
        out["vs_reference"][name] = {"only_reference": test.only_a, "only_other": test.only_b,
                                     "p_value": test.p_value}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, summarize, print and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("runs", type=Path, help="folder of eval run folders (e.g. scratch/sel)")
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--variant", action="append", default=[], metavar="NAME=PATTERN",
                   help="a variant's run folders, PATTERN with {seed}; the first is the "
                        "reference (instead of --preset)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--out", type=Path, help="JSON to write (default: the preset's results file)")
    args = p.parse_args(argv)
    if bool(args.preset) == bool(args.variant):
        p.error("give either --preset or --variant NAME=PATTERN (at least two)")
    variants = PRESETS[args.preset] if args.preset else dict(
        v.split("=", 1) for v in args.variant)
    if len(variants) < 2:
        p.error("need a reference and at least one other variant")
    out = args.out or DEFAULT_OUT.get(args.preset)
    if out is None:
        p.error("--out is needed with --variant")
    result = summarize(args.runs, variants, tuple(args.seeds))
    write_json_atomic(out, result, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
