"""Real-time chunking through the broker, the rollout, the VLA policy and the server.

The broker sends exactly the actions it will execute while the next chunk decodes
(``prev_actions``, ``frozen_steps``); a VLA token decoder reproduces them (their bin centres)
as the first steps of the new chunk; the server validates the keys, and requests without them
are answered as before.
"""

import time

import fake_reach_env
import gymnasium as gym
import numpy as np
import pytest

from policies.base import Policy
from policies.broker import ChunkBroker
from policies.rollout import rollout
from policies.server import BadRequest, PolicyServer, check_observation
from policies.wire import pack, unpack

torch = pytest.importorskip("torch")


class RecordingPolicy(Policy):
    """Chunk c has actions c*100 + i; records every observation it gets."""

    def __init__(self, horizon=16, sleep_s=0.0):
        self.horizon, self.sleep_s, self.seen = horizon, sleep_s, []

    def infer(self, obs):
        time.sleep(self.sleep_s)
        c = len(self.seen)
        self.seen.append(obs)
        values = c * 100 + np.arange(self.horizon, dtype=np.float32)
        return {"actions": np.repeat(values[:, None], 2, axis=1)}


@pytest.mark.parametrize(("latency_ms", "d"), [(80, 4), (160, 8), (0, 0)])
def test_broker_sends_exactly_what_executes_while_the_next_chunk_decodes(latency_ms, d):
    policy = RecordingPolicy(horizon=16)
    broker = ChunkBroker(policy, k=8, latency=latency_ms, control_dt=0.02, rtc=True)
    broker.reset(seed=0)
    executed = [float(broker.act({"x": 1})[0]) for _ in range(40)]
    assert "prev_actions" not in policy.seen[0]  # nothing is committed before the first chunk
    for stats, obs in zip(broker.chunk_stats[1:], policy.seen[1:], strict=True):
        t = stats.step
        assert obs["frozen_steps"] == stats.frozen_steps == d and obs["x"] == 1
        assert obs["prev_actions"].shape == (max(16 - 8, d), 2)
        # The committed steps are what the env executes at t .. t + d - 1.
        np.testing.assert_array_equal(obs["prev_actions"][:d, 0], executed[t:t + d])
        assert stats.delay_steps == d


def test_held_last_action_and_a_delay_beyond_the_chunk():
    policy = RecordingPolicy(horizon=8)
    broker = ChunkBroker(policy, k=8, latency=200, control_dt=0.02, rtc=True)  # 10 steps
    executed = [float(broker.act({})[0]) for _ in range(12)]
    obs = policy.seen[1]
    assert obs["frozen_steps"] == 7  # d < H
    np.testing.assert_array_equal(obs["prev_actions"][:, 0], np.full(7, 7.0))
    assert executed[8:12] == [7.0] * 4


def test_measured_latency_uses_the_previous_call_and_off_sends_nothing():
    policy = RecordingPolicy(horizon=16, sleep_s=0.05)
    broker = ChunkBroker(policy, k=8, latency="measured", control_dt=0.02, rtc=True)
    for _ in range(9):
        broker.act({})
    first_ms = broker.chunk_stats[0].ms
    assert policy.seen[1]["frozen_steps"] == min(15, int(np.ceil(first_ms / 20 - 1e-9)))
    plain = RecordingPolicy(horizon=16)
    off = ChunkBroker(plain, k=8, latency=80, control_dt=0.02)
    for _ in range(20):
        off.act({"x": 1})
    assert all(obs == {"x": 1} for obs in plain.seen)
    assert all(c.frozen_steps == 0 for c in off.chunk_stats)
    with pytest.raises(ValueError, match="ensemble_decay"):
        ChunkBroker(plain, k=1, ensemble_decay=0.1, rtc=True)


@pytest.fixture(scope="module")
def ar_checkpoint(tmp_path_factory):
    from vla.checkpoint import save_pretrained
    from vla.config import preset
    from vla.encoders import InstructionCache
    from vla.model import VLAModel

    root = tmp_path_factory.mktemp("rtc_ckpt")
    stats = {"action": {"q01": -np.ones(4), "q99": np.ones(4)},
             "state": {"mean": np.full(4, 0.5), "std": np.full(4, 0.3)}}
    for head in ("ar", "flow"):
        torch.manual_seed(0)
        cache = InstructionCache(allow_encoder=False)
        for text in ("reach the goal", "go to the goal"):
            cache.put(text, torch.nn.functional.normalize(torch.randn(384), dim=0))
        model = VLAModel(preset("tiny", head=head, state_dim=4, action_dim=4, horizon=8),
                         instructions=cache)
        model.set_stats(stats, instructions=["reach the goal", "go to the goal"])
        save_pretrained(model, root / head)
    return root


class Spy(Policy):
    """Wraps a policy and keeps (obs, result) of every call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def infer(self, obs):
        out = self.inner.infer(obs)
        self.calls.append((obs, out))
        return out

    def reset(self, *, seed=None):
        self.inner.reset(seed=seed)


@pytest.mark.parametrize("spec", ["ar", "jacobi+ee", "flow@2"])
def test_rollout_with_rtc_continues_the_committed_actions(ar_checkpoint, spec):
    from policies.vla_policy import VLAPolicy

    env = gym.make(fake_reach_env.ENV_ID)
    spy = Spy(VLAPolicy(ar_checkpoint, spec))
    record = rollout(env, spy, seed=1, k=4, latency=250, max_steps=14, rtc=True)  # d = 3
    env.close()
    assert record.steps == 14 and record.rtc and len(record.chunks) >= 3
    out = record.to_dict()
    assert out["rtc"] and out["chunk_frozen_steps"] == [0] + [3] * (len(record.chunks) - 1)
    for obs, result in spy.calls[1:]:
        prev, d = obs["prev_actions"], obs["frozen_steps"]
        assert result["frozen_steps"] == d == 3
        if spec == "flow@2":
            assert np.abs(result["actions"][:d] - prev[:d]).max() < 1.0  # guided, bounded
        else:  # token decoders: exactly the committed bin centres (already bin centres here)
            np.testing.assert_array_equal(result["actions"][:d], prev[:d])
    if spec == "ar":
        assert out["chunk_nfe"][1:] == [32 - 3 * 4] * (len(record.chunks) - 1)
    assert "rtc" not in rollout(gym.make(fake_reach_env.ENV_ID), VLAPolicy(ar_checkpoint, "ar"),
                                seed=1, k=4, max_steps=4).to_dict()


def test_server_validates_and_passes_prev_actions(ar_checkpoint):
    from policies.vla_policy import VLAPolicy

    env = gym.make(fake_reach_env.ENV_ID)
    obs, _ = env.reset(seed=0)
    env.close()
    prev = np.linspace(-0.5, 0.5, 12, dtype=np.float32).reshape(3, 4)
    assert check_observation({**obs, "prev_actions": prev, "frozen_steps": 2})["frozen_steps"] == 2
    for bad, match in [({"prev_actions": prev[0]}, "prev_actions"),
                       ({"prev_actions": prev * np.nan}, "non-finite"),
                       ({"prev_actions": np.array([["a"]])}, "prev_actions"),
                       ({"prev_actions": prev, "frozen_steps": 4}, "frozen_steps"),
                       ({"prev_actions": prev, "frozen_steps": 1.5}, "frozen_steps"),
                       ({"frozen_steps": 1}, "needs prev_actions")]:
        with pytest.raises(BadRequest, match=match):
            check_observation({**obs, **bad})
    server = PolicyServer(VLAPolicy(ar_checkpoint, "ar"), port=0)
    try:
        plain = unpack(server.answer(pack(obs)))
        assert "frozen_steps" not in plain and plain["nfe"] == 32
        rtc = unpack(server.answer(pack({**obs, "prev_actions": prev, "frozen_steps": 2})))
        assert rtc["frozen_steps"] == 2 and rtc["nfe"] == 32 - 2 * 4
        centres = -1 + (np.floor((prev[:2] + 1) * 128) + 0.5) / 128
        np.testing.assert_allclose(rtc["actions"][:2], centres, atol=1e-6)
        wrong_dim = server.answer(pack({**obs, "prev_actions": prev[:, :3]}))  # the model's check
        assert isinstance(wrong_dim, str) and wrong_dim.startswith("bad request: prefix_actions")
        assert isinstance(server.answer(pack(obs)), bytes)  # and it keeps serving
    finally:
        server.shutdown()
