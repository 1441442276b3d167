"""Move each distilled student towards its AR teacher in weight space (WiSE-FT), session 5.

`python experiments/results/vla/session5/wise.py ALPHA` writes `scratch/ckw<ALPHA>/seed<S>/cjacobi`
for S = 0, 1, 2: `vla.distill.mix_with_teacher` of `scratch/ckn8/seed<S>/cjacobi` with weights
ALPHA x student + (1 - ALPHA) x teacher (`scratch/ckn8/seed<S>/ar`), i.e. `teacher_mix = 1 - ALPHA`.
The student is fine-tuned from the teacher, so the straight line between them stays in one basin
(Wortsman et al., 2022, "Robust fine-tuning of zero-shot models").
"""
import sys
from pathlib import Path

from vla.distill import mix_with_teacher


def main(alpha: float) -> None:
    """Interpolate the three training seeds' students."""
    for seed in range(3):
        src = Path("scratch/ckn8") / f"seed{seed}"
        mix_with_teacher(src / "ar", src / "cjacobi",
                         Path(f"scratch/ckw{alpha:g}") / f"seed{seed}" / "cjacobi", 1 - alpha)


if __name__ == "__main__":
    main(float(sys.argv[1]))
