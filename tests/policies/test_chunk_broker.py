import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.base import Policy, PolicyOutputError
from policies.broker import ChunkBroker, latency_steps


class CountingPolicy(Policy):
    """Chunk c has actions c*10 + i (i = index in the chunk) in every dimension."""

    def __init__(self, horizon=4, dim=2, sleep_s=0.0):
        self.horizon, self.dim, self.sleep_s = horizon, dim, sleep_s
        self.calls, self.seeds = 0, []

    def infer(self, obs):
        time.sleep(self.sleep_s)
        values = self.calls * 10 + np.arange(self.horizon, dtype=np.float32)
        self.calls += 1
        return {"actions": np.repeat(values[:, None], self.dim, axis=1), "nfe": 3}

    def reset(self, *, seed=None):
        self.calls = 0
        self.seeds.append(seed)


def run(broker, steps):
    return [float(broker.act({})[0]) for _ in range(steps)]


def test_executes_first_k_then_replans():
    policy = CountingPolicy(horizon=4)
    broker = ChunkBroker(policy, k=2)
    broker.reset(seed=7)
    assert run(broker, 6) == [0, 1, 10, 11, 20, 21]
    assert [c.step for c in broker.chunk_stats] == [0, 2, 4]
    assert all(c.nfe == 3 and c.delay_steps == 0 for c in broker.chunk_stats)
    assert broker.k == 2 and policy.seeds == [7]


def test_k_none_executes_whole_chunk_and_records_h():
    broker = ChunkBroker(CountingPolicy(horizon=3))
    assert broker.k is None
    assert run(broker, 7) == [0, 1, 2, 10, 11, 12, 20]
    assert broker.k == 3


def test_reset_starts_a_new_timeline():
    broker = ChunkBroker(CountingPolicy(horizon=4), k=3)
    run(broker, 5)
    broker.reset()
    assert run(broker, 4) == [0, 1, 2, 10] and len(broker.chunk_stats) == 2


def test_k_larger_than_chunk_is_an_error():
    broker = ChunkBroker(CountingPolicy(horizon=2), k=3)
    with pytest.raises(ValueError, match="k=3 exceeds"):
        broker.act({})


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 1.5}, {"ensemble_decay": -1},
                                    {"latency": "slow", "control_dt": 0.1},
                                    {"latency": 50.0}, {"latency": -5, "control_dt": 0.1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ChunkBroker(CountingPolicy(), **kwargs)


def test_temporal_ensembling_weights_oldest_first():
    m = 0.5
    broker = ChunkBroker(CountingPolicy(horizon=3), k=1, ensemble_decay=m)
    got = run(broker, 4)
    w = np.exp(-m * np.arange(3))
    # step 0: chunk 0 only; step 1: chunks 0,1 -> predictions 1, 10; step t>=2: three chunks.
    expected = [0.0, np.dot(w[:2], [1, 10]) / w[:2].sum(), np.dot(w, [2, 11, 20]) / w.sum(),
                np.dot(w, [12, 21, 30]) / w.sum()]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_ensembling_with_zero_decay_is_the_mean():
    broker = ChunkBroker(CountingPolicy(horizon=2), k=1, ensemble_decay=0.0)
    assert run(broker, 3) == pytest.approx([0.0, 5.5, 15.5])


def test_fixed_latency_keeps_executing_previous_chunk():
    # H=5, k=2, 250 ms at 10 Hz -> n = 3 steps; new chunks are used time-aligned (index n).
    broker = ChunkBroker(CountingPolicy(horizon=5), k=2, latency=250.0, control_dt=0.1)
    assert run(broker, 11) == [0, 1, 2, 3, 4, 13, 14, 14, 23, 24, 24]
    assert [(c.step, c.delay_steps) for c in broker.chunk_stats] == [(0, 0), (2, 3), (5, 3),
                                                                     (8, 3)]


def test_small_latency_equals_one_step_delay():
    broker = ChunkBroker(CountingPolicy(horizon=4), k=2, latency=1.0, control_dt=0.1)
    assert run(broker, 6) == [0, 1, 2, 11, 12, 21]


def test_zero_latency_matches_blocking_mode():
    blocking = run(ChunkBroker(CountingPolicy(horizon=4), k=3), 9)
    assert run(ChunkBroker(CountingPolicy(horizon=4), k=3, latency=0.0, control_dt=0.1),
               9) == blocking


def test_measured_latency_of_a_slow_policy():
    broker = ChunkBroker(CountingPolicy(horizon=8, sleep_s=0.03), k=2, latency="measured",
                         control_dt=0.01)
    run(broker, 12)
    first, *rest = broker.chunk_stats
    assert first.delay_steps == 0
    assert rest and all(c.ms >= 30 for c in rest)
    assert all(c.delay_steps == math.ceil(c.ms / 10 - 1e-9) >= 3 for c in rest)


def test_latency_steps():
    assert latency_steps(0, 0.1) == 0
    assert latency_steps(100, 0.1) == 1
    assert latency_steps(101, 0.1) == 2
    assert latency_steps(0.01, 0.05) == 1
    with pytest.raises(ValueError):
        latency_steps(1, 0)


@pytest.mark.parametrize(("actions", "reason"), [
    (np.full((4, 2), np.nan), "non-finite"),
    (np.zeros((4, 3)), r"shape \(4, 3\)"),
    (np.zeros(2), r"shape \(2,\)"),
    (np.zeros((0, 2)), "shape"),
])
def test_bad_chunks_raise_policy_output_error(actions, reason):
    class Bad(Policy):
        def infer(self, obs):
            return {"actions": actions}

    with pytest.raises(PolicyOutputError, match=reason):
        ChunkBroker(Bad(), action_dim=2).act({})


@given(horizon=st.integers(1, 6), k_frac=st.floats(0, 1), delay=st.integers(0, 8),
       steps=st.integers(1, 40))
def test_timeline_invariants(horizon, k_frac, delay, steps):
    """The executed action is the latest arrived chunk's entry for step t (clamped).

    Chunk c >= 1 arrives ``delay`` steps after its request, and is requested k steps after
    chunk c - 1's observation or, if later, as soon as chunk c - 1 has arrived.
    """
    k = max(1, round(k_frac * horizon))
    latency_ms = delay * 100.0 - 50.0 if delay else 0.0  # ceil((delay - 0.5) * 0.1 s / 0.1 s)
    broker = ChunkBroker(CountingPolicy(horizon=horizon, dim=1), k=k, latency=latency_ms,
                         control_dt=0.1)
    actions = run(broker, steps)
    starts = [c.step for c in broker.chunk_stats]
    arrivals = [s + c.delay_steps for s, c in zip(starts, broker.chunk_stats, strict=True)]
    assert broker.chunk_stats[0].delay_steps == 0
    assert all(c.delay_steps == delay for c in broker.chunk_stats[1:])
    assert all(starts[c] == max(starts[c - 1] + k, arrivals[c - 1])
               for c in range(1, len(starts)))
    for t, value in enumerate(actions):
        chunk = max(c for c, arrival in enumerate(arrivals) if arrival <= t)
        assert value == chunk * 10 + min(t - starts[chunk], horizon - 1)
    if delay == 0:  # blocking: concatenation of each chunk's first k actions
        assert actions == [c * 10 + i for c in range(len(starts)) for i in range(k)][:steps]


def test_switch_steps_mark_where_a_new_chunk_takes_over():
    policy = CountingPolicy(horizon=4)
    broker = ChunkBroker(policy, k=2)
    broker.reset(seed=0)
    assert run(broker, 6) == [0, 1, 10, 11, 20, 21]
    assert broker.switch_steps == [0, 2, 4]
    # with latency the chunk requested at step 2 arrives 2 steps later
    late = ChunkBroker(CountingPolicy(horizon=4), k=2, latency=40.0, control_dt=0.02)
    late.reset(seed=0)
    actions = run(late, 8)
    # each chunk is indexed from its request step: the first action taken from it is its third
    assert late.switch_steps == [0, 4, 6] and actions[4] == 12.0 and actions[6] == 22.0


def test_smoothness_separates_switch_jumps_from_motion_within_chunks():
    from policies.rollout import smoothness

    # chunks of 4 steps moving by +1 per step, each new chunk starting 10 higher
    actions = [np.full(2, 10 * c + i, np.float32) for c in range(3) for i in range(4)]
    out = smoothness(actions, switch_steps=[0, 4, 8])
    assert out["step_jump"] == pytest.approx(math.sqrt(2))
    assert out["switch_jump"] == pytest.approx(math.sqrt(2) * 7)  # 10 - 3 per dimension
    assert out["jerk"] > 0
    for few in (actions[:1], []):
        assert smoothness(few, [0]) == {"switch_jump": None, "step_jump": None, "jerk": None}
