"""Round trip on the real MuJoCo tabletop: collect -> load -> replay reproduces the episodes."""

import json

import gymnasium as gym
import numpy as np
import pytest

from envs.dataset_reader import ActionChunkDataset
from envs.lerobot_dataset import collect

ENV_KWARGS = {"image_size": 64, "wrist_camera": True}


def _replay(env_id, seed, actions):
    env = gym.make(env_id, **ENV_KWARGS)
    try:
        obs, info = env.reset(seed=seed)
        first = {k: obs[k] for k in ("image", "wrist_image")}
        done = False
        for a in actions:
            assert not done, "the stored episode continues past the end of the replay"
            obs, _, terminated, truncated, info = env.step(a)
            done = terminated or truncated
        return first, bool(info["is_success"]), done
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["robodecode/TabletopPickPlace-v0"])
def test_tabletop_collect_load_replay(tmp_path, env_id):
    import envs  # noqa: F401

    collect(env_id, 2, tmp_path, noise=0.1, seed=100, env_kwargs=ENV_KWARGS, keep_failed=True,
            progress=False)
    ds = ActionChunkDataset(tmp_path, horizon=8)
    assert ds.camera_keys == ["image", "wrist_image"] and ds.fps == 50.0
    assert ds.action_dim == 4 and ds.state_dim == 7
    for ep in ds.episode_info():
        rows = list(range(ep["dataset_from_index"], ep["dataset_to_index"]))
        first, success, done = _replay(env_id, ep["seed"], ds.actions[rows])
        assert done and success == ep["success"]
        item = ds[rows[0]]
        assert item["instruction"] == ep["tasks"][0]
        for key in ("image", "wrist_image"):
            np.testing.assert_array_equal(item[key].numpy(), first[key])
    assert all(ep["success"] for ep in ds.episode_info())  # the expert is >= 95% at this noise


def test_tabletop_two_targets_per_layout(tmp_path):
    import envs  # noqa: F401

    env_id = "robodecode/TabletopPickPlace-v0"
    kwargs = {"image_size": 48}
    collect(env_id, 4, tmp_path, seed=7, env_kwargs=kwargs, targets_per_layout=2,
            progress=False)
    ds = ActionChunkDataset(tmp_path, horizon=4)
    eps = ds.episode_info()
    assert [ep["seed"] for ep in eps] == [7, 7, 8, 8] and all(ep["success"] for ep in eps)
    for a, b in (eps[0:2], eps[2:4]):
        first_a, first_b = ds[a["dataset_from_index"]], ds[b["dataset_from_index"]]
        np.testing.assert_array_equal(first_a["image"].numpy(), first_b["image"].numpy())
        np.testing.assert_array_equal(first_a["state"].numpy(), first_b["state"].numpy())
        assert first_a["instruction"] != first_b["instruction"]
        ta, tb = (json.loads(ep["reset_options"])["target"] for ep in (a, b))
        assert ta != tb
    env = gym.make(env_id, **kwargs)
    try:
        for ep in eps:
            options = json.loads(ep["reset_options"])
            obs, _ = env.reset(seed=ep["seed"], options=options)
            assert obs["instruction"] == ep["tasks"][0]
            assert options["target"]["block"] in obs["instruction"]
            rows = list(range(ep["dataset_from_index"], ep["dataset_to_index"]))
            for action in ds.actions[rows]:
                obs, _, terminated, truncated, info = env.step(action)
            assert info["is_success"] and terminated
    finally:
        env.close()
