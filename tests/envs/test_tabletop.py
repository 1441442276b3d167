"""Contract tests of the robodecode tabletop envs and their scripted experts."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.tabletop import DEFAULT_ID, TABLETOP_IDS
from envs.tabletop import instructions as ins
from envs.tabletop.env import TabletopEnv

PICK = "robodecode/TabletopPickPlace-v0"


def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return trace


def _run_expert(env, seed, expert=None, max_steps=400):
    expert = expert or envs.make_expert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    for _ in range(max_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            return info
    return info


def test_ids_registered_with_time_limits():
    assert DEFAULT_ID == PICK and len(TABLETOP_IDS) == 4
    for env_id in TABLETOP_IDS:
        assert gym.spec(env_id).max_episode_steps <= 150


@pytest.mark.parametrize("env_id", TABLETOP_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array", wrist_camera=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # render check included
    assert not [str(w.message) for w in caught]
    env.close()


@pytest.mark.parametrize("env_id", TABLETOP_IDS)
def test_same_seed_same_episode_images_included(env_id):
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 4)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = gym.make(env_id, wrist_camera=True)
        runs.append(_rollout(env, 7, actions))
        env.close()
    a, b = runs
    assert len(a) == len(b)
    for x, y in zip(a[1:], b[1:], strict=True):
        for key in ("image", "wrist_image", "state", "instruction"):
            np.testing.assert_array_equal(x[0][key], y[0][key])
        assert x[1:4] == y[1:4] and x[4] == y[4]
    np.testing.assert_array_equal(a[0]["image"], b[0]["image"])


def test_different_seeds_give_different_layouts():
    env = gym.make(PICK)
    first = env.reset(seed=0)[0]["image"]
    assert not np.array_equal(first, env.reset(seed=1)[0]["image"])
    env.close()


@pytest.mark.parametrize("env_id", TABLETOP_IDS)
def test_expert_succeeds(env_id):
    env = gym.make(env_id, images=False)
    tasks = set()
    for seed in range(4):
        info = _run_expert(env, seed)
        assert info["is_success"], (env_id, seed)
        tasks.add(info["task"])
    if "Multi" in env_id:
        assert len(tasks) >= 2
    env.close()


def test_expert_regrasps_a_dropped_block():
    env = gym.make(PICK, images=False)
    expert = envs.make_expert(env, seed=0)
    obs, _ = env.reset(seed=3)
    expert.reset()
    base = env.unwrapped
    while expert.phase != "carry":
        obs, *_ = env.step(expert.act(obs))
    for _ in range(6):  # open the jaw mid-carry: the block falls
        obs, *_ = env.step(np.array([0, 0, 0, 1], np.float32))
    assert not base.is_grasped(base.task_spec.block)
    phases = []
    for _ in range(150):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        phases.append(expert.phase)
        if terminated or truncated:
            break
    assert info["is_success"] and "close" in phases


def test_expert_with_noise_is_diverse_and_still_succeeds():
    env = gym.make(PICK, images=False)
    traces = []
    for noise_seed in (0, 1):
        expert = envs.make_expert(env, noise=0.2, seed=noise_seed)
        obs, _ = env.reset(seed=5)
        expert.reset()
        acts = []
        for _ in range(150):
            acts.append(expert.act(obs))
            obs, _, terminated, truncated, info = env.step(acts[-1])
            if terminated or truncated:
                break
        assert info["is_success"]
        traces.append(np.array(acts))
    assert not np.array_equal(traces[0][:5], traces[1][:5])
    with pytest.raises(ValueError, match="noise"):
        envs.make_expert(env, noise=-1)


def test_observation_and_render_shapes():
    env = gym.make(PICK, render_mode="rgb_array", wrist_camera=True, image_size=96)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == obs["wrist_image"].shape == (96, 96, 3)
    assert obs["image"].dtype == np.uint8 and obs["state"].dtype == np.float32
    assert obs["state"].shape == (7,) and not info["is_success"]
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, obs["image"])
    assert env.unwrapped.control_dt == pytest.approx(0.02)
    assert env.metadata["render_fps"] == 50
    env.close()
    env = gym.make(PICK, images=False)
    assert set(env.reset(seed=0)[0]) == {"state", "instruction"} and env.render() is None


def test_bad_actions_raise_and_out_of_range_is_clipped():
    env = gym.make(PICK, images=False)
    env.reset(seed=0)
    for bad in (np.zeros(3), np.zeros((1, 4)), [0.0, np.nan, 0, 0], [np.inf, 0, 0, 0]):
        with pytest.raises(ValueError, match=r"action must"):
            env.step(bad)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        env.step(np.zeros(5))
    big = _rollout(env, 1, [np.array([5.0, -3.0, 2.0, 9.0])] * 3)
    unit = _rollout(env, 1, [np.array([1.0, -1.0, 1.0, 1.0])] * 3)
    np.testing.assert_array_equal(big[-1][0]["state"], unit[-1][0]["state"])


def test_bad_constructor_arguments():
    for kwargs, name in (({"task": "stack"}, "task"), ({"split": "test"}, "split"),
                         ({"image_size": 4}, "image_size")):
        with pytest.raises(ValueError, match=name):
            gym.make(PICK, **kwargs)
    with pytest.raises(ValueError, match="render_mode"):
        TabletopEnv(render_mode="human")  # gym.make would wrap "human" in HumanRendering


@pytest.mark.parametrize("task", ins.TASKS)
def test_heldout_split_disjoint_from_train(task):
    train, heldout = ins.instructions(task, "train"), ins.instructions(task, "heldout")
    assert train and heldout and not train & heldout
    assert not set(ins.phrasings(task, "train")) & set(ins.phrasings(task, "heldout"))
    for spec in ins.episode_choices(task, "train"):
        assert spec.phrasing in ins.phrasings(task, "train")
        if task != "reach":
            assert (spec.block, spec.zone) in ins.TRAIN_COMBOS
    for text in train | heldout:
        assert set(text) <= set(ins.CHARSET) and len(text) <= ins.MAX_INSTRUCTION_LENGTH
    assert not ins.TRAIN_COMBOS & ins.HELDOUT_COMBOS


def test_heldout_env_draws_only_heldout_instructions_naming_the_target():
    env = gym.make("robodecode/TabletopMultiTask-v0", split="heldout", images=False)
    train = set().union(*(ins.instructions(t, "train") for t in ins.TASKS))
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        spec = env.unwrapped.task_spec
        assert obs["instruction"] not in train
        for colour in (spec.block, spec.zone):
            assert colour is None or colour in obs["instruction"]


def test_physics_stays_stable_under_bang_bang_actions():
    env = gym.make(PICK, images=False, max_episode_steps=1000)
    base = env.unwrapped
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for k in range(400):
        if k % 5 == 0:
            action = rng.choice([-1.0, 1.0], size=4)
            action[2] = -1.0 if k % 40 < 20 else action[2]  # press into the table too
        env.step(action)
        for colour in ins.BLOCK_COLOURS:
            p = base.block_pos(colour)
            assert np.all(np.isfinite(p)) and 0.0 < p[2] < 0.3
            assert abs(p[0]) < 0.34 and abs(p[1]) < 0.32  # inside the rim


def test_push_expert_lines_up_again_after_the_block_is_knocked_aside():
    env = gym.make("robodecode/TabletopPush-v0", images=False)
    expert = envs.make_expert(env)
    base = env.unwrapped
    obs, _ = env.reset(seed=4)
    expert.reset()
    while expert.phase != "push":
        obs, *_ = env.step(expert.act(obs))
    q = base._block_q[base.task_spec.block]
    base.data.qpos[q:q + 2] += (0.03, 0.03)  # a knock the expert did not cause
    base.data.qvel[:] = 0
    phases = []
    for _ in range(120):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        phases.append(expert.phase)
        if terminated or truncated:
            break
    assert info["is_success"] and "reposition" in phases


def test_time_limit_truncates_without_terminating():
    env = gym.make(PICK, images=False, max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert truncated and not terminated and not info["is_success"]


def test_held_block_survives_full_speed_shaking():
    env = gym.make(PICK, images=False, max_episode_steps=1000)
    base = env.unwrapped
    expert = envs.make_expert(env)
    obs, _ = env.reset(seed=6)
    while expert.phase != "carry":
        obs, *_ = env.step(expert.act(obs))
    rng = np.random.default_rng(6)
    for k in range(120):
        if k % 3 == 0:  # bang-bang moves, reversing every 3 steps, jaw kept closed
            action = np.append(rng.choice([-1.0, 1.0], size=3), -1.0)
            action[2] = 1.0 if base.grip_pos[2] < 0.1 else action[2]
        env.step(action)
        assert base.is_grasped(base.task_spec.block), k


def test_target_override_keeps_the_layout_and_changes_the_instruction():
    env = gym.make(PICK, image_size=64)
    base = env.unwrapped
    obs, _ = env.reset(seed=5)
    own, choices = base.target, base.target_choices()
    assert own in choices and len(choices) == len(ins.TRAIN_COMBOS)
    blocks = {c: base.block_pos(c) for c in ins.BLOCK_COLOURS}
    for other in [t for t in choices if t["block"] != own["block"]][:2]:
        obs2, _ = env.reset(seed=5, options={"target": other})
        np.testing.assert_array_equal(obs2["image"], obs["image"])
        np.testing.assert_array_equal(obs2["state"], obs["state"])
        for c in ins.BLOCK_COLOURS:
            np.testing.assert_array_equal(base.block_pos(c), blocks[c])
        assert base.target == other and obs2["instruction"] != obs["instruction"]
        assert other["block"] in obs2["instruction"] and other["zone"] in obs2["instruction"]
    env.close()


@pytest.mark.parametrize("env_id", [PICK, "robodecode/TabletopReach-v0"])
def test_expert_follows_an_overridden_target(env_id):
    env = gym.make(env_id, images=False)
    expert = envs.make_expert(env)
    for seed in range(3):
        env.reset(seed=seed)
        own = env.unwrapped.target
        target = next(t for t in env.unwrapped.target_choices()
                      if t["block"] != own["block"] or t["zone"] != own["zone"])
        obs, _ = env.reset(seed=seed, options={"target": target})
        expert.reset()
        for _ in range(400):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert info["is_success"] and env.unwrapped.target == target, (env_id, seed, target)
    env.close()


def test_bad_target_override_raises_listing_the_valid_ones():
    env = gym.make(PICK, images=False)
    with pytest.raises(ValueError, match="block must be one of"):
        env.reset(seed=0, options={"target": {"block": "pink", "zone": "white"}})
    with pytest.raises(ValueError, match="zone must be one of"):
        env.reset(seed=0, options={"target": {"block": "red", "zone": "black"}})
    with pytest.raises(ValueError, match="keys 'block' and/or 'zone'"):
        env.reset(seed=0, options={"target": {"colour": "red"}})
    with pytest.raises(ValueError, match=r"not a pickplace target of the 'train' split; valid: .*"
                                         r"'yellow', 'zone': 'white'"):
        env.reset(seed=0, options={"target": {"block": "red", "zone": "orange"}})  # held out
    heldout = gym.make(PICK, images=False, split="heldout")
    obs, _ = heldout.reset(seed=0, options={"target": {"block": "red", "zone": "orange"}})
    assert obs["instruction"] in ins.instructions("pickplace", "heldout")
    heldout.close()
    env.close()
