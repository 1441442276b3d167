"""The action-chunk reader on hand-written LeRobot v3 folders (layouts we did not write)."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.dataset_reader import ActionChunkDataset, camera_names, split_episodes
from envs.lerobot_format import encode_png

TASKS = ["push the T into place", "do nothing"]


def _write_foreign(root: Path, lengths: list[int], *, files: list[list[int]] | None = None,
                   stats: dict | None = None, path_image_row: int | None = None) -> dict:
    """Write a LeRobot-v3-style dataset the way other tools do.

    A pusht-like image key, variable-length list columns, a pandas-indexed tasks.parquet and
    several data files in several chunks (rows shuffled inside each file).
    """
    files = files or [list(range(len(lengths)))]
    rng = np.random.default_rng(0)
    total = sum(lengths)
    actions = rng.uniform(-1, 1, (total, 2)).astype(np.float32)
    state = rng.normal(size=(total, 2)).astype(np.float32)
    images = rng.integers(0, 255, (total, 8, 8, 3), dtype=np.uint8)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    for number, eps in enumerate(files):
        rows = [r for e in eps for r in range(starts[e], starts[e] + lengths[e])]
        cells = []
        for r in rows:
            if r == path_image_row:
                (root / "images").mkdir(parents=True, exist_ok=True)
                (root / f"images/frame{r}.png").write_bytes(encode_png(images[r]))
                cells.append({"bytes": None, "path": f"images/frame{r}.png"})
            else:
                cells.append({"bytes": encode_png(images[r]), "path": f"frame_{r}.png"})
        ep_of = np.repeat(np.arange(len(lengths)), lengths)
        frame_of = np.concatenate([np.arange(n) for n in lengths])
        table = pa.table({
            "observation.image": pa.array(cells, pa.struct([("bytes", pa.binary()),
                                                            ("path", pa.string())])),
            "observation.state": pa.array(state[rows].tolist(), pa.list_(pa.float32())),
            "action": pa.array(actions[rows].tolist(), pa.list_(pa.float32())),
            "episode_index": pa.array(ep_of[rows], pa.int64()),
            "frame_index": pa.array(frame_of[rows], pa.int64()),
            "timestamp": pa.array(frame_of[rows] / 10, pa.float32()),
            "index": pa.array(rows, pa.int64()),
            "task_index": pa.array(ep_of[rows] % 2, pa.int64()),
        })
        path = root / f"data/chunk-{number:03d}/file-000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(pa.array(rng.permutation(len(rows)))), path)  # unsorted rows
    (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"episode_index": list(range(len(lengths))), "length": lengths,
                             "tasks": [[TASKS[e % 2]] for e in range(len(lengths))],
                             "stats/action/mean": [[0.0, 0.0]] * len(lengths)}),
                   root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": TASKS}),
                   root / "meta/tasks.parquet")
    feats = {"observation.image": {"dtype": "image", "shape": [8, 8, 3], "names": None},
             "observation.state": {"dtype": "float32", "shape": [2], "names": None},
             "action": {"dtype": "float32", "shape": [2], "names": None}}
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 10, "features": feats, "total_episodes": len(lengths),
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))
    if stats is not None:
        (root / "meta/stats.json").write_text(json.dumps(stats))
    return {"actions": actions, "state": state, "images": images, "starts": starts}


def test_reads_a_foreign_layout_with_several_files(tmp_path):
    truth = _write_foreign(tmp_path, [3, 5, 2], files=[[0, 2], [1]], path_image_row=4)
    ds = ActionChunkDataset(tmp_path, horizon=4)
    assert len(ds) == 10 and ds.camera_keys == ["image"] and ds.fps == 10.0
    assert ds.action_dim == 2 and ds.state_dim == 2 and ds.episode_indices == [0, 1, 2]
    item = ds[4]  # episode 1, frame 1; its image lives in a file referenced by path
    assert item["episode_index"] == 1 and item["frame_index"] == 1
    assert item["instruction"] == TASKS[1]
    np.testing.assert_array_equal(item["image"].numpy(), truth["images"][4])
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (8, 8, 3)
    np.testing.assert_array_equal(item["actions"].numpy(), truth["actions"][4:8])
    assert item["state"].dtype == torch.float32
    last = ds[9]
    assert last["action_is_pad"].tolist() == [False, True, True, True]
    np.testing.assert_array_equal(last["actions"].numpy(), np.repeat(truth["actions"][9:], 4, 0))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 8, 8, 3) and batch["actions"].shape == (4, 4, 2)
    assert batch["action_is_pad"].dtype == torch.bool and len(batch["instruction"]) == 4
    # No stats.json: every statistic is computed from the data.
    np.testing.assert_allclose(ds.stats["action"]["q99"],
                               np.quantile(truth["actions"], 0.99, axis=0), rtol=1e-5)
    np.testing.assert_allclose(ds.stats["state"]["mean"], truth["state"].mean(0), rtol=1e-5)


def test_stored_stats_are_used_and_missing_quantiles_computed(tmp_path):
    stored = {"action": {"mean": [5.0, 6.0], "std": [1.0, 1.0], "min": [-1, -1], "max": [1, 1]}}
    truth = _write_foreign(tmp_path, [4, 4], stats=stored)
    stats = ActionChunkDataset(tmp_path, horizon=2, cache_images=True).stats
    assert stats["action"]["mean"].tolist() == [5.0, 6.0]
    np.testing.assert_allclose(stats["action"]["q01"],
                               np.quantile(truth["actions"], 0.01, axis=0), rtol=1e-5)
    assert set(stats["state"]) == {"mean", "std", "min", "max", "q01", "q99"}


def test_episode_subset_split_and_errors(tmp_path):
    _write_foreign(tmp_path, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    train, val = split_episodes(tmp_path, val_fraction=0.2, seed=3)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert split_episodes(tmp_path, 0.2, 3) == (train, val)
    assert split_episodes(tmp_path, 0.2, 4) != (train, val)
    ds = ActionChunkDataset(tmp_path, horizon=3, episodes=val)
    assert ds.episode_indices == val
    assert {ds[i]["episode_index"] for i in range(len(ds))} == set(val)
    assert len(ds) == sum(range(2, 12)[e] for e in val)
    with pytest.raises(ValueError, match="horizon"):
        ActionChunkDataset(tmp_path, horizon=0)
    with pytest.raises(ValueError, match="episodes"):
        ActionChunkDataset(tmp_path, horizon=1, episodes=[42])
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(tmp_path, 1.0)
    with pytest.raises(ValueError, match="not a LeRobot dataset"):
        ActionChunkDataset(tmp_path / "nothing", horizon=1)


def test_camera_names_map_to_contract_keys():
    feats = {"observation.images.top": {"dtype": "video"},
             "observation.images.left_wrist": {"dtype": "image"},
             "observation.images.side": {"dtype": "image"},
             "observation.state": {"dtype": "float32"}}
    assert camera_names(feats) == {"image": "observation.images.top",
                                   "wrist_image": "observation.images.left_wrist",
                                   "side": "observation.images.side"}
    ours = {"observation.images.wrist_image": {"dtype": "image"},
            "observation.images.image": {"dtype": "image"}}
    assert list(camera_names(ours)) == ["image", "wrist_image"]


@settings(max_examples=25)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), horizon=st.integers(1, 8))
def test_chunks_repeat_the_last_action_past_the_episode_end(lengths, horizon):
    with tempfile.TemporaryDirectory() as tmp:
        truth = _write_foreign(Path(tmp), lengths)
        ds = ActionChunkDataset(tmp, horizon=horizon)
        assert len(ds) == sum(lengths)
        for i in range(len(ds)):
            item = ds[i]
            e, f = item["episode_index"], item["frame_index"]
            start, n = truth["starts"][e], lengths[e]
            want = truth["actions"][start + np.minimum(f + np.arange(horizon), n - 1)]
            np.testing.assert_array_equal(item["actions"].numpy(), want)
            assert item["action_is_pad"].tolist() == [f + k >= n for k in range(horizon)]
