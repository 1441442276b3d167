"""The batched policy server: concurrent clients share batches, each gets its own answer.

Real servers on 127.0.0.1 and real websocket / openpi clients; the batch window is made long
(so that every concurrent request joins one batch) where a test needs batches to form.
"""

import json
import threading
import urllib.error
import urllib.request

import fake_reach_env
import gymnasium as gym
import numpy as np
import pytest
from tiny_checkpoint import write_checkpoint_set

from policies.base import Policy
from policies.batching import SERIAL, BatchConfig
from policies.server import PolicyServer
from policies.wire import pack, unpack

openpi_client = pytest.importorskip("openpi_client.websocket_client_policy")
from websockets.sync.client import connect  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # openpi-client 0.1.2's own connect() call
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")

OBS = {"image": np.zeros((8, 8, 3), np.uint8), "instruction": "reach"}


class EchoPolicy(Policy):
    """Answers state[0] as a (2, 3) chunk; refuses the instruction "refuse"; logs batches."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def infer(self, obs):
        self.batches.append(1)
        return self._one(obs)

    def infer_batch(self, observations):
        self.batches.append(len(observations))
        out = []
        for obs in observations:
            try:
                out.append(self._one(obs))
            except ValueError as err:
                out.append(err)
        return out

    @staticmethod
    def _one(obs):
        if obs["instruction"] == "refuse":
            raise ValueError("refused this one")
        return {"actions": np.full((2, 3), float(obs["state"][0]), np.float32)}


def _drive(port, messages, rounds=3):
    """One websocket client per message, all sending at once, ``rounds`` times; the replies."""
    replies = [[] for _ in messages]
    barrier = threading.Barrier(len(messages))

    def client(i):
        with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            unpack(ws.recv())
            for _ in range(rounds):
                barrier.wait(timeout=10)
                ws.send(pack(messages[i]))
                replies[i].append(ws.recv(timeout=10))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(messages))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return replies


def _get(port, path, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, None, ""


def test_concurrent_requests_share_a_batch_and_a_refused_one_fails_alone():
    policy = EchoPolicy()
    messages = [{**OBS, "state": np.array([i, 0, 0], np.float32)} for i in range(8)]
    messages[3] = {**messages[3], "instruction": "refuse"}
    messages[5] = {**messages[5], "image": np.zeros((8, 8), np.uint8)}  # the server's check
    with PolicyServer(policy, port=0, batching=BatchConfig(window_ms=300, max_batch=64)) as srv:
        replies = _drive(srv.port, messages)
        status, kind, body = _get(srv.port, "/metrics")
    for i, got in enumerate(replies):
        for reply in got:
            if i == 3:
                assert reply == "bad request: refused this one"
            elif i == 5:
                assert isinstance(reply, str) and reply.startswith("bad request:"), reply
            else:
                result = unpack(reply)
                np.testing.assert_array_equal(result["actions"], np.full((2, 3), i))
                assert result["server_timing"]["batch_size"] == 7  # all but the malformed one
                assert result["server_timing"]["queue_ms"] >= 0
    assert policy.batches == [7, 7, 7]
    metrics = json.loads(body)
    assert status == 200 and kind == "application/json"
    assert metrics["requests"] == 18 and metrics["bad_requests"] == 6 and metrics["errors"] == 6
    assert metrics["batch_size_histogram"] == {"7": 3} and metrics["mean_batch_size"] == 7
    assert 0 < metrics["latency_ms"]["p50"] <= metrics["latency_ms"]["p99"]
    assert metrics["max_batch"] == 64 and metrics["batch_window_ms"] == 300


def test_max_batch_bounds_batches_and_serial_serves_one_at_a_time():
    for batching, largest in ((BatchConfig(window_ms=300, max_batch=3), 3), (SERIAL, 1)):
        policy = EchoPolicy()
        messages = [{**OBS, "state": np.array([i, 0, 0], np.float32)} for i in range(6)]
        with PolicyServer(policy, port=0, batching=batching) as srv:
            replies = _drive(srv.port, messages, rounds=2)
            metrics = json.loads(_get(srv.port, "/metrics")[2])
        assert all(not isinstance(r, str) for got in replies for r in got)
        assert max(policy.batches) == largest and sum(policy.batches) == 12
        assert max(int(k) for k in metrics["batch_size_histogram"]) == largest


def test_metrics_need_the_key_when_there_is_one_and_refuse_browser_origins():
    with PolicyServer(EchoPolicy(), port=0, api_key="s3cret") as srv:
        assert _get(srv.port, "/metrics")[0] == 401
        assert _get(srv.port, "/metrics", {"Authorization": "Api-Key wrong"})[0] == 401
        status, _, body = _get(srv.port, "/metrics", {"Authorization": "Api-Key s3cret"})
        assert status == 200 and json.loads(body)["requests"] == 0
        assert _get(srv.port, "/healthz")[0] == 200  # probes still need no key
        assert _get(srv.port, "/metrics", {"Authorization": "Api-Key s3cret",
                                           "Origin": "http://evil.example"})[0] == 403


def test_a_policy_whose_batch_call_raises_answers_server_errors_and_keeps_serving():
    class Flaky(EchoPolicy):
        def infer_batch(self, observations):
            raise RuntimeError("device lost")

    messages = [{**OBS, "state": np.array([i, 0, 0], np.float32)} for i in range(3)]
    with PolicyServer(Flaky(), port=0, batching=BatchConfig(window_ms=300)) as srv:
        replies = _drive(srv.port, messages, rounds=1)
        assert all(r[0] == "server error: RuntimeError: device lost" for r in replies)
        client = openpi_client.WebsocketClientPolicy("127.0.0.1", srv.port)
        try:  # alone, it goes through infer and is served
            assert client.infer(messages[0] | {"state": np.ones(3)})["actions"][0, 0] == 1
        finally:
            client._ws.close()
        assert srv.errors == 3 and srv.requests == 1


@pytest.fixture(scope="module")
def tiny_ar(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from policies.vla_policy import VLAPolicy

    root = write_checkpoint_set(tmp_path_factory.mktemp("srv_ckpt"), {"ar": "ar"})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    policy = VLAPolicy(root, "ar")
    policy.model.double()  # exactness in float64 (see test_batching.py)
    yield policy
    torch.set_num_threads(before)


def test_batched_vla_answers_equal_the_policy_alone(tiny_ar):
    env = gym.make(fake_reach_env.ENV_ID)
    observations = [env.reset(seed=s)[0] for s in range(6)]
    env.close()
    expected = [tiny_ar.infer(o)["actions"] for o in observations]
    with PolicyServer(tiny_ar, port=0, batching=BatchConfig(window_ms=300)) as srv:
        replies = _drive(srv.port, observations, rounds=2)
    for want, got in zip(expected, replies, strict=True):
        for reply in got:
            result = unpack(reply)
            np.testing.assert_array_equal(result["actions"], want)
            assert result["server_timing"]["batch_size"] == 6 and result["nfe"] == 16


def test_serve_cli_takes_the_batching_options():
    from typer.testing import CliRunner

    from experiments.cli import build_app

    runner = CliRunner()
    res = runner.invoke(build_app(), ["serve", "--help"], terminal_width=200)
    for option in ("--batch-window-ms", "--max-batch", "--fast"):
        assert option in res.output, option
    for option, value, field in (("--max-batch", "0", "max_batch"),
                                 ("--batch-window-ms", "-1", "window_ms"),
                                 ("--warm-up", "128", "--warm-up"),
                                 ("--warm-up", "0x64", "--warm-up")):
        res = runner.invoke(build_app(), ["serve", "--policy", ".", "--decoder", "oft", option,
                                          value])
        assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output


def test_warm_up_builds_the_fast_path_for_every_batch_size():
    from policies.vla_policy import VLAPolicy

    policy = VLAPolicy("experiments/checkpoints/TabletopPickPlace-v0/seed0", "oft", fast=True)
    assert policy.warm_up((96, 80), max_batch=4) == 3  # batches 1, 2, 4
    shapes = {key[0][0][:3] for key in policy.model._fast.engines}
    assert shapes == {(1, 96, 80), (2, 96, 80), (4, 96, 80)}
