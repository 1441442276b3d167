"""Data-parallel training (``torchrun``, gloo on CPU) matches one process at the same batch.

A 2-process ``torchrun --nproc_per_node 2 -m vla train`` run and a 1-process run of the same
command (``--batch-size`` is the global batch in both) must give the same per-step loss and
the same weights. They are not bitwise equal: one process sums the batch's gradient in one
backward pass, two processes each sum half and gloo adds the halves, so float32 rounding
differs (~1e-7 relative per step, carried through AdamW). Tolerance: train/validation losses
and gradient norms within 1e-5 relative, weights and EMA within 1e-5 absolute + 1e-4 relative
(the largest difference seen is ~1e-6). One exception: parameters whose gradient is zero in
exact arithmetic. The tiny preset's first conv has 8 channels and GroupNorm(8, 8) after it, so
its bias is normalized away; its float32 gradient is rounding noise that AdamW (which divides
by the gradient's own scale) turns into steps of up to ~lr of either sign. Those are held to
AdamW's bound instead: at most ``steps x lr`` apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vla_fakes import fake_instruction_cache

from vla.checkpoint import TRAIN_META_FILE, TRAIN_STATE_FILE, read_tensors
from vla.distributed import DistContext

ROOT = Path(__file__).resolve().parents[2]
LOSS_RTOL = 1e-5
WEIGHT_ATOL, WEIGHT_RTOL = 1e-5, 1e-4
LR = 1e-3  # the CLI's default peak learning rate
NULL_GRADIENT = ("image_enc.cnn.0.bias",)  # conv bias before a one-channel-per-group norm


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory):
    """Three expert episodes of TabletopReach at 32x32, with a fake instruction cache."""
    pytest.importorskip("envs")
    from envs.dataset_reader import ActionChunkDataset
    from envs.lerobot_dataset import collect

    root = tmp_path_factory.mktemp("ddp") / "reach"
    collect("robodecode/TabletopReach-v0", 3, root, seed=0, progress=False,
            env_kwargs={"image_size": 32})
    cache = fake_instruction_cache()
    g = torch.Generator().manual_seed(1)
    for text in set(ActionChunkDataset(root, 4)._tasks.values()):
        cache.put(text, torch.randn(384, generator=g))
    cache.save(root.parent / "instructions.safetensors")
    return root


def _train(data: Path, out: Path, nproc: int, steps: int) -> None:
    """``python -m vla train`` on ``nproc`` processes (torchrun for more than one)."""
    _run(nproc, "train", "--head", "ar", "--preset", "tiny", "--horizon", "4",
         "--data", str(data), "--out", str(out), "--steps", str(steps), "--batch-size", "6",
         "--warmup", "2", "--eval-every", "1", "--ema", "0.5", "--threads", "1",
         "--no-progress", "--instruction-cache", str(data.parent / "instructions.safetensors"),
         "--data-cache", str(out.parent / f"chunks{nproc}"))


def _run(nproc: int, *args: str) -> str:
    """``python -m vla ARGS`` on ``nproc`` processes; returns stdout."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", str(nproc)] if nproc > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    res = subprocess.run([*launcher, "-m", "vla", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.splitlines().count("{") == 1, res.stdout  # rank 0 alone prints
    return res.stdout


def _history(out: Path) -> list[dict]:
    return json.loads((out / TRAIN_META_FILE).read_text())["history"]


def _assert_same_run(a: Path, b: Path, resumed_at: int) -> None:
    """Same logged curve and weights; running ``train_*`` means only up to ``resumed_at``."""
    ha, hb = _history(a), _history(b)
    steps = ha[-1]["step"]
    assert [e["step"] for e in ha] == [e["step"] for e in hb]
    for ea, eb in zip(ha, hb, strict=True):
        keys = ["val_loss", "val_token_acc", "grad_norm", "lr"]
        if ea["step"] <= resumed_at:
            keys += ["train_loss", "train_token_acc"]
        for key in keys:
            assert eb[key] == pytest.approx(ea[key], rel=LOSS_RTOL), (ea["step"], key)
    sa, sb = read_tensors(a / TRAIN_STATE_FILE), read_tensors(b / TRAIN_STATE_FILE)
    assert sa.keys() == sb.keys()
    for name in sa:
        if name.endswith(NULL_GRADIENT):
            assert float((sb[name] - sa[name]).abs().max()) <= steps * LR, name
        elif name.startswith(("param.", "ema.")):
            torch.testing.assert_close(sb[name], sa[name], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL,
                                       msg=name)


def test_two_processes_match_one_and_resume(reach_data, tmp_path):
    _train(reach_data, tmp_path / "one", 1, 6)
    _train(reach_data, tmp_path / "two", 2, 3)
    assert len(_history(tmp_path / "two")) == 3
    # Resume: 2 processes continue the 3-step run to 6 steps (one process resumes exactly,
    # test_train_distill), and the whole curve and the weights match the straight run's.
    _train(reach_data, tmp_path / "two", 2, 6)
    _assert_same_run(tmp_path / "one", tmp_path / "two", resumed_at=3)
    one = read_tensors(tmp_path / "one" / TRAIN_STATE_FILE)
    two = read_tensors(tmp_path / "two" / TRAIN_STATE_FILE)
    assert any(not torch.equal(one[k], two[k]) for k in one)  # not bitwise: gloo's sums


def test_distill_runs_on_two_processes_and_rank_zero_writes(reach_data, tmp_path):
    from vla.pipeline import train_head

    train_head(head="ar", data=reach_data, out=tmp_path / "ar", steps=1, batch_size=4,
               preset_name="tiny", horizon=4, progress=False, data_cache=tmp_path / "chunks",
               instruction_cache=reach_data.parent / "instructions.safetensors")
    out = _run(2, "distill", "--teacher", str(tmp_path / "ar"), "--data", str(reach_data),
               "--out", str(tmp_path / "cj"), "--steps", "2", "--batch-size", "4",
               "--n-trajectories", "8", "--n-eval", "2", "--eval-every", "1", "--threads", "1",
               "--no-progress", "--data-cache", str(tmp_path / "chunks"),
               "--instruction-cache", str(reach_data.parent / "instructions.safetensors"))
    assert json.loads(out[out.index("{"):])["teacher_mean_passes_train"] > 0
    ee = json.loads((tmp_path / "cj" / "early_exit.json").read_text())
    assert [e["step"] for e in ee["history"]] == [0, 1, 2]
    assert (tmp_path / "cj" / "trajectories.safetensors").is_file()


def test_shards_cover_the_global_batch_once():
    for world, n in ((2, 6), (3, 7), (4, 4)):
        parts = [DistContext(rank=r, world_size=world).shard(n) for r in range(world)]
        covered = [i for p in parts for i in range(n)[p]]
        assert covered == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    with pytest.raises(ValueError, match="batch_size"):
        DistContext(rank=0, world_size=4).shard(3)
    with pytest.raises(ValueError, match="rank"):
        DistContext(rank=2, world_size=2)
