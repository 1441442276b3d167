"""The H100 eager bench of session 3 (run on the device box by ``finish.sh``).

Usage: ``python bench.py CHECKPOINT_SET OUT.json`` from the repository root, with the decoded
chunk archive of ``make_default.py --collect`` in ``scratch/arch`` (the box has no pyarrow, so
``vla.bench.load_split`` is pointed at the archive's split of seed 0 instead of a LeRobot
dataset).
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, "experiments/checkpoints")
from make_default import load_archive  # noqa: E402

import vla.bench as vb  # noqa: E402

torch.set_num_threads(2)
split = load_archive(Path("scratch/arch"), 0)
vb.load_split = lambda *a, **k: split
res = vb.run_bench(Path(sys.argv[1]), data=Path("scratch/arch"), device="cuda", threads=2,
                   n_obs=64, train_steps=30)
res["settings"]["gpu"] = torch.cuda.get_device_name(0)
res["settings"]["data"] = ("held-out episodes (split seed 0) of the 4000-episode counterfactual "
                           "archive (make_default.py --collect 4000 --targets-per-layout 4)")
res["settings"]["torch"] = torch.__version__
Path(sys.argv[2]).write_text(json.dumps(res, indent=1, default=str))
