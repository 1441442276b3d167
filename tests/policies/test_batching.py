"""Batched inference: ``VLAPolicy.infer_batch`` against ``infer``, and the micro-batcher.

Exactness is checked in float64 on random weights (near-ties of float32 logits could flip an
argmax between batch sizes; DESIGN.md's rule for exactness tests), on observations that mix
instructions, real-time-chunking prefixes of different lengths and bad rows.
"""

import threading
import time

import fake_reach_env
import gymnasium as gym
import numpy as np
import pytest
from tiny_checkpoint import write_checkpoint_set

from policies.batching import SERIAL, BatchConfig, MicroBatcher, infer_each

torch = pytest.importorskip("torch")

HEADS = {"ar": "ar", "cjacobi": "ar", "oft": "oft", "flow": "flow", "diffusion": "diffusion"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint_set(tmp_path_factory):
    return write_checkpoint_set(tmp_path_factory.mktemp("batch_ckpt"), HEADS)


@pytest.fixture(scope="module")
def observations():
    env = gym.make(fake_reach_env.ENV_ID)
    obs = [env.reset(seed=s)[0] for s in range(12)]
    env.close()
    for o in obs[6:]:
        o["instruction"] = "go to the goal"
    return obs


def _policy(checkpoint_set, spec):
    from policies.vla_policy import VLAPolicy

    policy = VLAPolicy(checkpoint_set, spec)
    policy.model.double()
    return policy


def _alone(policy, observations):
    return infer_each(policy, observations)


def _mixed(observations):
    """Plain rows, two RTC prefix lengths, and rows the model refuses."""
    prev = np.linspace(-0.5, 0.5, 12, dtype=np.float32).reshape(3, 4)
    obs = [dict(o) for o in observations]
    obs[2] |= {"prev_actions": prev, "frozen_steps": 2}
    obs[3] |= {"prev_actions": prev + 0.1, "frozen_steps": 2}
    obs[4] |= {"prev_actions": prev[:2]}
    obs[8] |= {"prev_actions": prev[:2] - 0.2}
    return obs + [
        {**observations[0], "state": np.full(4, np.nan)},
        {**observations[1], "image": observations[1]["image"].astype(np.float32)},
        {k: v for k, v in observations[2].items() if k != "state"},
        {**observations[3], "prev_actions": prev[:, :3]},
        {**observations[4], "frozen_steps": 1},
        {**observations[5], "state": np.zeros((2, 4), np.float32)},
    ]


@pytest.mark.parametrize("spec", ["ar", "jacobi", "cjacobi", "oft"])
def test_batched_equals_alone_for_deterministic_decoders(checkpoint_set, observations, spec):
    policy = _policy(checkpoint_set, spec)
    obs = _mixed(observations)
    alone, batched = _alone(policy, obs), policy.infer_batch(obs)
    assert len(batched) == len(obs)
    for i, (a, b) in enumerate(zip(alone, batched, strict=True)):
        if isinstance(a, Exception):  # the same error as alone, and the others are served
            assert type(b) is type(a) and str(b) == str(a), (i, a, b)
            continue
        np.testing.assert_array_equal(b["actions"], a["actions"], err_msg=str(i))
        assert b.get("frozen_steps") == a.get("frozen_steps")
        assert b["nfe"] == a["nfe"]  # the row's own passes (Jacobi: batch_nfe is the max)
        if "batch_nfe" in b:
            assert b["batch_nfe"] >= b["nfe"]
    sizes = [b.get("batch_size") for b in batched[:12]]
    assert sizes.count(8) == 8 and sizes.count(2) == 4, sizes  # 3 groups of compatible rows
    assert sum(isinstance(b, Exception) for b in batched) == 6


@pytest.mark.parametrize("spec", ["jacobi+ee", "cjacobi+ee"])
def test_batched_equals_alone_for_jacobi_with_early_exit(checkpoint_set, observations, spec):
    """Each row's early exit is its own (decoding.jacobi), so a batch does not change it."""
    policy = _policy(checkpoint_set, spec)
    alone, batched = _alone(policy, observations), policy.infer_batch(observations)
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(b["actions"], a["actions"])
        assert b["nfe"] == a["nfe"] <= b["batch_nfe"]
    assert len({a["nfe"] for a in alone}) > 1  # rows exit at different passes


@pytest.mark.parametrize("spec", ["flow@2", "diffusion@3"])
def test_stochastic_decoders_draw_independent_noise_per_row_reproducibly(
        checkpoint_set, observations, spec):
    policy = _policy(checkpoint_set, spec)
    same = [observations[0]] * 4
    policy.reset(seed=5)
    first = policy.infer_batch(same)
    rows = [r["actions"] for r in first]
    assert all(r.shape == (4, 4) and np.all(np.isfinite(r)) for r in rows)
    if spec.startswith("flow"):  # continuous samples: no two rows share their noise
        assert len({r.tobytes() for r in rows}) == 4
    policy.reset(seed=5)
    again = policy.infer_batch(same)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["actions"], b["actions"])


def test_groups_by_frame_shape_and_a_lone_row_goes_through_infer(checkpoint_set, observations):
    policy = _policy(checkpoint_set, "ar")
    big = {**observations[0], "image": np.repeat(np.repeat(observations[0]["image"], 2, 0), 2, 1)}
    obs = [observations[1], big, observations[2]]
    batched = policy.infer_batch(obs)
    assert [b.get("batch_size") for b in batched] == [2, None, 2]
    for a, b in zip(_alone(policy, obs), batched, strict=True):
        np.testing.assert_array_equal(a["actions"], b["actions"])


def test_a_failing_stacked_call_is_retried_row_by_row(checkpoint_set, observations, monkeypatch):
    policy = _policy(checkpoint_set, "oft")
    real = policy.model.predict_chunk

    def fail_batches(obs, **kwargs):
        if np.ndim(obs["state"]) == 2:
            raise RuntimeError("out of memory")
        return real(obs, **kwargs)

    monkeypatch.setattr(policy.model, "predict_chunk", fail_batches)
    batched = policy.infer_batch(observations[:3])
    assert all("batch_size" not in b for b in batched)
    for a, b in zip(_alone(policy, observations[:3]), batched, strict=True):
        np.testing.assert_array_equal(a["actions"], b["actions"])


def test_fast_is_passed_only_when_asked(checkpoint_set, observations, monkeypatch):
    from policies.vla_policy import VLAPolicy
    from vla.model import VLAModel

    original, seen = VLAModel.predict_chunk, []

    def spy(self, obs_batch, decoder=None, **kwargs):
        seen.append(kwargs.get("fast", "absent"))
        return original(self, obs_batch, decoder, **kwargs)

    monkeypatch.setattr(VLAModel, "predict_chunk", spy)
    fast = VLAPolicy(checkpoint_set, "oft", fast=True)
    batched = fast.infer_batch(observations[:2])
    VLAPolicy(checkpoint_set, "oft").infer(observations[0])
    assert seen == [True, "absent"] and fast.metadata["fast"] is True
    for a, b in zip(_alone(VLAPolicy(checkpoint_set, "oft"), observations[:2]), batched,
                    strict=True):  # the fast path (static cache) answers as the eager one
        np.testing.assert_allclose(b["actions"], a["actions"], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------- the micro-batcher
def test_batch_config_names_the_bad_field():
    with pytest.raises(ValueError, match="window_ms"):
        BatchConfig(window_ms=-1)
    with pytest.raises(ValueError, match="max_batch"):
        BatchConfig(max_batch=0)
    with pytest.raises(ValueError, match="max_batch > 1"):
        MicroBatcher(lambda items: items, SERIAL)
    assert BatchConfig().batched and not SERIAL.batched


def _submit_all(batcher, items):
    out = [None] * len(items)
    barrier = threading.Barrier(len(items))

    def go(i):
        barrier.wait()
        out[i] = batcher.submit(items[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return out


def test_concurrent_items_share_batches_and_each_gets_its_own_outcome():
    sizes = []

    def run(items):
        sizes.append(len(items))
        return [ValueError(f"bad {i}") if i % 5 == 0 else i * 10 for i in items]

    batcher = MicroBatcher(run, BatchConfig(window_ms=200, max_batch=4))
    try:
        out = _submit_all(batcher, list(range(1, 11)))
    finally:
        batcher.close()
    for i, (outcome, queued) in enumerate(out, start=1):
        if i % 5 == 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"bad {i}"
        else:
            assert outcome == i * 10
        assert 0 <= queued < 5
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10, sizes


def test_a_lone_client_does_not_wait_for_the_window_and_close_answers_the_queue():
    batcher = MicroBatcher(lambda items: [i + 1 for i in items],
                           BatchConfig(window_ms=1000, max_batch=8), capacity=lambda: 1)
    tic = time.perf_counter()
    assert batcher.submit(1)[0] == 2
    assert time.perf_counter() - tic < 0.5
    batcher.close()
    outcome, _ = batcher.submit(1)
    assert isinstance(outcome, RuntimeError) and "shutting down" in str(outcome)


def test_a_batch_function_that_raises_fails_only_that_batch():
    calls = []

    def run(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return items

    batcher = MicroBatcher(run, BatchConfig(window_ms=0, max_batch=2), capacity=lambda: 1)
    try:
        first, _ = batcher.submit("a")
        second, _ = batcher.submit("b")
    finally:
        batcher.close()
    assert isinstance(first, RuntimeError) and second == "b"


def test_a_batch_waits_for_announced_items_and_not_for_withdrawn_ones():
    batches = []
    batcher = MicroBatcher(lambda items: batches.append(list(items)) or list(items),
                           BatchConfig(window_ms=50, max_batch=8))
    try:
        ticket = batcher.announce()  # received, still being checked
        first = threading.Thread(target=batcher.submit, args=("a",))
        first.start()
        time.sleep(0.3)  # far past the window: still waiting for the announced one
        assert batches == []
        batcher.submit("b", ticket)
        first.join(timeout=5)
        assert batches == [["a", "b"]]
        ticket = batcher.announce()
        lone = threading.Thread(target=batcher.submit, args=("c",))
        lone.start()
        time.sleep(0.2)
        batcher.withdraw(ticket)  # refused by the checks: the batch goes without it
        lone.join(timeout=5)
        assert batches[-1] == ["c"]
        batcher.withdraw(ticket)  # twice is harmless
    finally:
        batcher.close()


def test_clients_answered_by_a_batch_get_a_window_to_rejoin_the_next_one():
    """Two groups of clients must not settle into alternating half batches."""
    batches = []

    def run(items):
        batches.append(list(items))
        time.sleep(0.3)
        return list(items)

    batcher = MicroBatcher(run, BatchConfig(window_ms=150, max_batch=8))

    def answered_then_back():
        batcher.submit("a")  # alone (nobody else yet), runs 0.3 s
        time.sleep(0.03)
        batcher.submit("c")  # back 30 ms after its answer, within the window

    def during_the_first_batch():
        time.sleep(0.2)
        batcher.submit("b")  # queued while "a" decodes: waits for "c" instead of going alone

    threads = [threading.Thread(target=f) for f in (answered_then_back, during_the_first_batch)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    finally:
        batcher.close()
    assert batches == [["a"], ["b", "c"]]
