"""The per-task env cache of multi-task envs (MT10, LIBERO suites): bounded, least recently used."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from envs.multitask import TaskSwitchingEnv


class _Task(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-1, 1, (1,))
    action_space = gymnasium.spaces.Box(-1, 1, (1,))
    built: list[str] = []
    closed: list[str] = []

    def __init__(self, task: str, render_mode: str | None = None):
        self.task, self.control_dt, self.image_size = task, 0.05, 32
        _Task.built.append(task)

    def reset(self, *, seed=None, options=None):
        return np.zeros(1, np.float32), {"task": self.task}

    def close(self):
        _Task.closed.append(self.task)


class _Suite(TaskSwitchingEnv):
    task_env = _Task

    def __init__(self, max_task_envs: int | None = None):
        self._setup(("a", "b", "c"), None, max_task_envs)

    def reset(self, *, seed=None, options=None):
        self._current = self._env(options["task"])
        return self._current.reset()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("ROBODECODE_MAX_TASK_ENVS", raising=False)
    _Task.built, _Task.closed = [], []


def _visit(env: _Suite, tasks: str) -> None:
    for task in tasks:
        assert env.reset(options={"task": task})[1]["task"] == task


def test_unbounded_keeps_every_task_env():
    env = _Suite()
    _visit(env, "abcabc")
    assert _Task.built == ["a", "b", "c"] and _Task.closed == [] and env.max_task_envs is None
    env.close()
    assert sorted(_Task.closed) == ["a", "b", "c"]


def test_bounded_closes_the_least_recently_used():
    env = _Suite(max_task_envs=2)
    _visit(env, "ab")
    _visit(env, "a")  # a is now the most recent: building c evicts b
    _visit(env, "c")
    assert _Task.closed == ["b"] and list(env._envs) == ["a", "c"]
    _visit(env, "b")  # rebuilt; a goes
    assert _Task.built == ["a", "b", "c", "b"] and _Task.closed == ["b", "a"]
    assert env.task == "b"


def test_environment_variable_sets_the_bound(monkeypatch):
    monkeypatch.setenv("ROBODECODE_MAX_TASK_ENVS", " 1 ")
    env = _Suite()
    _visit(env, "abc")
    assert env.max_task_envs == 1 and list(env._envs) == ["c"] and _Task.closed == ["a", "b"]
    assert _Suite(max_task_envs=3).max_task_envs == 3  # the argument wins


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_bound_is_refused(value):
    with pytest.raises(ValueError, match="max_task_envs must be a positive integer"):
        _Suite(max_task_envs=value)


@pytest.mark.parametrize("text", ["0", "two", "-3"])
def test_bad_environment_variable_is_refused(monkeypatch, text):
    monkeypatch.setenv("ROBODECODE_MAX_TASK_ENVS", text)
    with pytest.raises(ValueError, match="positive integer"):
        _Suite()
