"""Contract tests of the gym-pusht adapter (envs/pusht_task.py); PushT has no expert."""

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

import gymnasium  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402
from envs import pusht_task  # noqa: E402
from envs.pusht_task import HELDOUT_INSTRUCTIONS, PUSHT_ID, TRAIN_INSTRUCTIONS  # noqa: E402


@pytest.fixture(scope="module")
def pusht():
    """A registered PushT env shared by the module's tests."""
    pusht_task.register_envs()
    env = gymnasium.make(PUSHT_ID, render_mode="rgb_array")
    yield env
    env.close()


def test_registered_outside_the_robodecode_namespace(pusht):
    assert not PUSHT_ID.startswith("robodecode/") and PUSHT_ID in gymnasium.registry
    assert pusht.spec.max_episode_steps == 300
    with pytest.raises(ValueError, match="no scripted expert"):
        envs.make_expert(pusht)


def test_check_env(pusht):
    check_env(pusht.unwrapped)


def test_observation_contract(pusht):
    obs, info = pusht.reset(seed=0)
    assert obs["image"].shape == (96, 96, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (2,) and obs["state"].dtype == np.float32
    assert obs["instruction"] in TRAIN_INSTRUCTIONS and info["is_success"] is False
    assert obs in pusht.observation_space
    assert pusht.unwrapped.control_dt == pytest.approx(0.1)
    np.testing.assert_array_equal(pusht.render(), obs["image"])


def test_action_is_the_normalized_target(pusht):
    pusht.reset(seed=1)
    for _ in range(10):  # the PD controller converges on the commanded target
        obs, *_ = pusht.step(np.array([0.5, -0.25], dtype=np.float32))
    np.testing.assert_allclose(obs["state"], [0.5, -0.25], atol=0.03)
    # the pusher (blue) is drawn where the state says: x right, y down
    image = obs["image"].astype(int)
    blue = (image[..., 2] > 150) & (image[..., 0] < 120)
    rows, cols = np.nonzero(blue)
    size = image.shape[0]
    assert abs(cols.mean() / size - 0.75) < 0.05 and abs(rows.mean() / size - 0.375) < 0.05


def test_same_seed_same_episode(pusht):
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    runs = []
    for _ in range(2):
        obs, _ = pusht.reset(seed=5)
        frames = [obs["image"]]
        for a in actions:
            frames.append(pusht.step(a)[0]["image"])
        runs.append(frames)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(pusht.reset(seed=6)[0]["image"], runs[0][0])


@pytest.mark.parametrize("action", [np.zeros(4), np.array([np.nan, 0.0]), np.zeros((1, 2))])
def test_bad_action_raises(pusht, action):
    pusht.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2,\)|finite"):
        pusht.step(action)


def test_heldout_split_and_bad_arguments():
    assert not set(TRAIN_INSTRUCTIONS) & set(HELDOUT_INSTRUCTIONS)
    env = pusht_task.PushTTaskEnv(split="heldout")
    assert env.reset(seed=0)[0]["instruction"] in HELDOUT_INSTRUCTIONS
    env.close()
    for kwargs, name in [({"split": "x"}, "split"), ({"image_size": 4}, "image_size")]:
        with pytest.raises(ValueError, match=name):
            pusht_task.PushTTaskEnv(**kwargs)
