"""Every registered env refuses actions that are not finite real numbers of the right shape."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids

ENV_IDS = sorted(i for i in gym.registry if i.split("/")[0] in ("robodecode",
                                                                 "robodecode_thirdparty"))


def _bad_actions(dim: int) -> dict[str, object]:
    """Actions of the right shape (or string-like) whose entries are not real numbers."""
    return {
        "complex": np.array([0.1 + 0.5j] + [0.0] * (dim - 1)),
        "complex, zero imaginary": np.zeros(dim, np.complex64),
        "python complex": [0.5j] * dim,
        "object": np.array([0.1] * (dim - 1) + [None], dtype=object),
        "object of floats": np.zeros(dim, dtype=object),
        "strings": ["0.1"] * dim,
        "bytes": np.array([b"0"] * dim),
        "one string": "0" * dim,
        "bool": np.ones(dim, bool),
        "ragged": [[0.0]] + [[0.0, 0.0]] * (dim - 1),
    }


@pytest.fixture(scope="module", params=ENV_IDS)
def env(request):
    if request.param.startswith("robodecode/MetaWorld"):
        pytest.importorskip("metaworld")
    if "PushT" in request.param:
        pytest.importorskip("gym_pusht")
    made = gym.make(request.param)
    made.reset(seed=0)
    yield made
    made.close()


def test_non_real_actions_are_refused(env):
    dim = env.action_space.shape[0]
    for name, action in _bad_actions(dim).items():
        with pytest.raises(ValueError, match="action must"):
            env.step(action)
            pytest.fail(f"{name} action accepted")
    env.step([0] * dim)  # plain ints stay fine
    env.step(np.zeros(dim, np.float32))
