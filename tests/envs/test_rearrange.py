"""TabletopRearrange-v0: the env's own checks, its expert, and agreement with the LTL engine."""

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.tabletop import REARRANGE_ID
from envs.tabletop import instructions as ins
from envs.tabletop.rearrange import first_violation
from envs.tabletop.rearrange_tasks import PATTERNS, PHRASINGS, atoms, task_choices
from planners.ltl import LTLf


def _expert_episode(env, seed, pattern=None, edit=None):
    """Run the scripted expert; returns (final info, trace of atom sets, task)."""
    obs, info = env.reset(seed=seed, options={"pattern": pattern} if pattern else None)
    if edit is not None:  # change the task after the reset (same layout)
        env.unwrapped.rearrange_task = edit(env.unwrapped.rearrange_task)
    expert = envs.make_expert(env, seed=seed)
    expert.reset()
    trace = [set(info["atoms"])]
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        trace.append(set(info["atoms"]))
        if terminated or truncated:
            return info, trace, env.unwrapped.rearrange_task


def test_check_env_and_time_limit():
    env = gym.make(REARRANGE_ID, image_size=32, render_mode="rgb_array", wrist_camera=True)
    assert env.spec.max_episode_steps == 400
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # render check included
    assert not [str(w.message) for w in caught]
    obs, info = env.reset(seed=0)
    assert env.observation_space["instruction"].contains(obs["instruction"])
    assert set(info["atoms"]) <= set(atoms()) and info["placed"] == 0
    assert info["violation"] is None and not info["is_success"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_expert_succeeds_and_the_ltl_engine_agrees_with_the_env(pattern):
    env = gym.make(REARRANGE_ID, images=False)
    for seed in (0, 1):
        info, trace, task = _expert_episode(env, seed, pattern)
        assert task.pattern == pattern
        assert info["is_success"] and info["violation"] is None, (seed, task.instruction)
        assert info["placed"] == len(task.placements)
        assert LTLf(task.formula).accepts(trace)  # the executed trace satisfies the spec
        assert first_violation(task, trace) is None


def test_putting_a_block_in_the_avoided_zone_is_a_violation_that_ends_the_episode():
    env = gym.make(REARRANGE_ID, images=False)

    def avoid_first_target(task):
        return dataclasses.replace(task, avoid=task.placements[0][1])

    info, trace, task = _expert_episode(env, 3, "both", edit=avoid_first_target)
    b, z = task.placements[0]
    assert info["violation"] == f"{b}_in_{z}" and not info["is_success"]
    assert env.unwrapped.elapsed_steps < 400  # terminated, not truncated
    assert first_violation(task, trace) == info["violation"]
    assert not LTLf(task.formula).accepts(trace)


def test_order_violation_is_found_on_the_trace_and_by_the_formula():
    task = task_choices("ordered", "train", np.random.default_rng(0))[0]
    (b1, z1), (b2, z2) = task.placements
    wrong = [set(), {f"{b2}_in_{z2}"}, {f"{b2}_in_{z2}", f"{b1}_in_{z1}"}]
    right = [set(), {f"{b1}_in_{z1}"}, {f"{b2}_in_{z2}", f"{b1}_in_{z1}"}]
    assert first_violation(task, wrong) == f"{b2}_in_{z2} before {b1}_in_{z1}"
    assert first_violation(task, right) is None
    assert not LTLf(task.formula).accepts(wrong) and LTLf(task.formula).accepts(right)


def test_heldout_instructions_never_appear_in_training():
    rng = np.random.default_rng(0)
    train = {t.instruction for p in PATTERNS for t in task_choices(p, "train", rng, 200)}
    held = task_choices("both", "heldout", rng, 200)
    assert not train & {t.instruction for t in held}
    assert all(set(t.placements) & ins.HELDOUT_COMBOS or t.phrasing in PHRASINGS["both"][1]
               for t in held)
    for t in held:
        assert len(t.instruction) <= 192 and set(t.instruction) <= set(ins.CHARSET)


def test_bad_pattern_is_refused():
    env = gym.make(REARRANGE_ID, images=False)
    with pytest.raises(ValueError, match=r"\['pattern'\] must be one of"):
        env.reset(seed=0, options={"pattern": "stack"})


def test_step_instructions_follow_the_next_placement_and_collect_records_them(tmp_path):
    env = gym.make(REARRANGE_ID, images=False, step_instructions=True)
    obs, info = env.reset(seed=4, options={"pattern": "ordered"})
    task = env.unwrapped.rearrange_task
    expert = envs.make_expert(env, seed=0)
    seen = [obs["instruction"]]
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        seen.append(obs["instruction"])
        if terminated or truncated:
            break
    assert info["is_success"] and info["task_instruction"] == task.instruction
    assert list(dict.fromkeys(seen)) == list(task.steps)  # one step's words, then the next's

    from envs.dataset_reader import ActionChunkDataset
    from envs.lerobot_dataset import collect

    collect(REARRANGE_ID, 2, tmp_path / "ds", env_kwargs={"step_instructions": True,
                                                        "image_size": 32}, progress=False)
    ds = ActionChunkDataset(tmp_path / "ds", horizon=4)
    recorded = {ds[i]["instruction"] for i in range(0, len(ds), 5)}
    assert len(recorded) >= 2 and recorded <= {  # 2 episodes, 2-3 steps each
        f"put the {b} block in the {z} zone" for b in ins.BLOCK_COLOURS for z in ins.ZONE_COLOURS}
