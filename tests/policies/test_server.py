"""The policy server driven by the published ``openpi-client``, and its wire codec.

The server holds the shipped default checkpoint (OFT head: deterministic, one pass) and is
fed real observations of the MuJoCo tabletop.
"""

import threading
import urllib.request

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the ids
from policies.rollout import rollout
from policies.wire import WireError, pack, unpack

torch = pytest.importorskip("torch")
openpi_client = pytest.importorskip("openpi_client.websocket_client_policy")
from openpi_client import msgpack_numpy as openpi_codec  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

SHIPPED = "experiments/checkpoints/TabletopPickPlace-v0/seed0"
pytestmark = pytest.mark.filterwarnings(  # openpi-client 0.1.2's own connect() call
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")


@pytest.fixture(scope="module")
def env():
    env = gym.make("robodecode/TabletopPickPlace-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def policy():
    from policies.vla_policy import VLAPolicy

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield VLAPolicy(SHIPPED, "oft")
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(policy):
    from policies.server import PolicyServer

    with PolicyServer(policy, port=0) as running:
        yield running


def test_codec_round_trip_and_openpi_compatibility():
    msg = {"image": np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "state": np.ones(7, "<f4"),
           "n": np.int64(3), "instruction": "put the red block", "nested": [1.5, {"a": None}]}
    for data in (pack(msg), openpi_codec.packb(msg)):  # ours and openpi's bytes read the same
        back = unpack(data)
        np.testing.assert_array_equal(back["image"], msg["image"])
        assert back["state"].dtype == np.float32 and back["image"].flags.writeable
        assert back["n"] == 3 and back["instruction"] == msg["instruction"]
        assert back["nested"] == [1.5, {"a": None}]
    np.testing.assert_array_equal(openpi_codec.unpackb(pack(msg))["image"], msg["image"])
    assert pack(msg) == openpi_codec.packb(msg)


@pytest.mark.parametrize("data", [
    b"\xc1garbage", b"", "a text frame",
    openpi_codec.packb({b"__ndarray__": True, b"data": b"\x00" * 3, b"dtype": "<f4",
                        b"shape": [2]}),
    openpi_codec.packb({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O",
                        b"shape": [1]}),
    openpi_codec.packb({b"__ndarray__": True, b"data": b"", b"dtype": "<f4",
                        b"shape": [2**32, 2**32]}),  # int64 product would wrap to 0 bytes
    openpi_codec.packb({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [-1]}),
    b"\x91" * 5000 + b"\xc0",  # nested deeper than msgpack's stack
    b"\xdd" + (10**6).to_bytes(4, "big") + b"\x80" * 10**6,  # a million empty maps
    openpi_codec.packb({b"__ndarray__": True, b"data": b"\x07", b"dtype": "|b1",
                        b"shape": [1]}),  # not a bool
])
def test_codec_refuses_malformed_messages(data):
    with pytest.raises(WireError):
        unpack(data)
    with pytest.raises(WireError, match="cannot send"):
        pack({"x": object()})


def test_openpi_client_gets_the_same_actions_as_the_local_policy(server, policy, env):
    client = openpi_client.WebsocketClientPolicy("127.0.0.1", server.port)
    meta = client.get_server_metadata()
    assert meta["decoder"] == "oft" and meta["action_horizon"] == 8 and meta["action_dim"] == 4
    obs, _ = env.reset(seed=3)
    remote = client.infer(obs)
    np.testing.assert_array_equal(remote["actions"], policy.infer(obs)["actions"])
    assert remote["nfe"] == 1 and remote["server_timing"]["infer_ms"] > 0
    prompt = {k: v for k, v in obs.items() if k != "instruction"} | {
        "prompt": obs["instruction"]}  # openpi's key for the instruction
    np.testing.assert_array_equal(client.infer(prompt)["actions"], remote["actions"])
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
        assert r.status == 200


def test_a_closed_loop_episode_through_the_server_matches_the_local_one(server, policy, env):
    client = openpi_client.WebsocketClientPolicy("127.0.0.1", server.port)
    remote = rollout(env, client, seed=2)
    local = rollout(env, policy, seed=2)
    assert remote.success and local.success  # the shipped OFT head solves this seed
    assert (remote.steps, remote.sum_reward) == (local.steps, local.sum_reward)
    assert [c.nfe for c in remote.chunks] == [c.nfe for c in local.chunks]


def test_robodecode_eval_drives_the_server_through_openpi_client(server, tmp_path, monkeypatch):
    from experiments.evaluate import EvalConfig, evaluate

    monkeypatch.setenv("ROBODECODE_TEST_PORT", str(server.port))
    cfg = EvalConfig(policy="openpi_factory:client", env_id="robodecode/TabletopPickPlace-v0",
                     episodes=2, seed=2, k=8, max_steps=40)
    summary = evaluate(cfg, tmp_path, progress=False)
    assert summary["episodes"] == 2 and summary["nfe_per_chunk"] == 1
    assert all(e["failure"] is None or e["failure"].startswith("time limit")
               for e in summary["per_episode"])


def test_garbage_gets_an_error_and_the_server_keeps_serving(server, env):
    obs, _ = env.reset(seed=0)
    nan_state = {**obs, "state": np.full_like(obs["state"], np.nan)}
    batch = {**obs, "state": np.stack([obs["state"]] * 2)}
    bad = {"not msgpack": b"\xc1\x00\x01", "missing key": pack({"state": obs["state"]}),
           "NaN state": pack(nan_state), "batch": pack(batch),
           "short state": pack({**obs, "state": obs["state"][:3]}),
           "float image": pack({**obs, "image": obs["image"].astype(np.float32)}),
           "not a map": pack([1, 2, 3])}
    bad |= {"image batch": pack({**obs, "image": np.zeros((64, 1, 1, 3), np.uint8)}),
            "long instruction": pack({**obs, "instruction": "x" * 10_000}),
            "huge state": pack({**obs, "state": np.full_like(obs["state"], 3.4e38)})}
    expect = {"not msgpack": "msgpack", "missing key": "missing keys", "NaN state": "non-finite",
              "batch": "one observation", "short state": "dims", "float image": "uint8",
              "not a map": "must be a map", "image batch": "one (H, W, 3) frame",
              "long instruction": "at most 512",
              "huge state": "bad request: state[0] = 3.4e+38"}
    errors = server.errors
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        unpack(ws.recv())  # the metadata
        for name, message in bad.items():
            ws.send(message)
            reply = ws.recv()
            assert isinstance(reply, str) and expect[name] in reply, (name, reply)
        ws.send("a text frame")
        assert "binary" in ws.recv()
        ws.send(pack(obs))  # the same connection still works
        assert unpack(ws.recv())["actions"].shape == (8, 4)
    assert server.errors == errors + len(bad) + 1
    client = openpi_client.WebsocketClientPolicy("127.0.0.1", server.port)  # and new ones
    with pytest.raises(RuntimeError, match="missing keys"):
        client.infer({"state": obs["state"]})
    assert client.infer(obs)["actions"].shape == (8, 4)


def test_concurrent_clients_each_get_their_own_answers(server, policy, env):
    """Concurrent requests may share a batch, so answers agree to float rounding.

    The OFT head's continuous chunk from a batch differs from the policy alone by batched
    matmuls' rounding; batched token decoders are checked for identical tokens in
    test_batching.py.
    """
    observations = [env.reset(seed=s)[0] for s in range(4)]
    expected = [policy.infer(o)["actions"] for o in observations]
    failures = []

    def drive(i):
        client = openpi_client.WebsocketClientPolicy("127.0.0.1", server.port)
        for _ in range(3):
            got = client.infer(observations[i])["actions"]
            if not np.allclose(got, expected[i], rtol=0, atol=1e-4):
                failures.append(i)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)


def test_serve_cli_rejects_bad_input_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import build_app

    runner = CliRunner()
    res = runner.invoke(build_app(), ["serve", "--policy", SHIPPED, "--decoder", "flw@2"])
    assert res.exit_code == 2 and "flow@K" in res.output and "Traceback" not in res.output
    res = runner.invoke(build_app(), ["serve", "--policy", str(tmp_path), "--decoder", "oft"])
    assert res.exit_code == 2 and "model folders found: none" in res.output


def test_server_benchmark_times_both_paths_on_the_same_observations():
    from experiments.bench_server import run_benchmark

    record = run_benchmark(SHIPPED, "oft", calls=3, warmup=1)
    assert record["calls"] == 3 and record["request_bytes"] > 64 * 64 * 3
    assert 0 < record["direct"]["median_ms"] <= record["direct"]["p90_ms"]
    assert record["served"]["median_ms"] > 0 and record["server_infer"]["median_ms"] > 0


def test_server_load_benchmark_smoke(tmp_path):
    import json

    from typer.testing import CliRunner

    from experiments.cli import build_app

    res = CliRunner().invoke(build_app(), [
        "bench", "server-load", "--decoder", "oft", "--clients", "1,3", "--requests", "2",
        "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "server_load_cpu.json").read_text())
    assert record["provenance"]["threads"] == 1 and record["max_batch"] == 64
    assert [r["clients"] for r in record["rows"]] == [1, 3]
    for row in record["rows"]:
        for mode in ("serial", "batched"):
            cell = row[mode]
            assert cell["requests"] == 2 * row["clients"] and cell["throughput_rps"] > 0
            assert 0 < cell["p50_ms"] <= cell["p99_ms"]
            assert cell["max_abs_diff_vs_alone"] < 1e-4  # OFT: alone to float rounding
        assert row["serial"]["mean_batch_size"] == 1 and row["speedup"] > 0
    res = CliRunner().invoke(build_app(), ["bench", "server-load", "--clients", "0"])
    assert res.exit_code == 2 and "--clients" in res.output


def test_server_bounds_clients_and_stops_unstarted(policy, env):
    import time

    from websockets.exceptions import ConnectionClosed

    from policies import server as server_module

    started = time.perf_counter()
    server_module.PolicyServer(policy, port=0).shutdown()  # never served: must not hang
    assert time.perf_counter() - started < 2
    with server_module.PolicyServer(policy, port=0, max_clients=1) as small:
        url = f"ws://127.0.0.1:{small.port}"
        with connect(url, max_size=None) as first:
            unpack(first.recv())
            with connect(url) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv()
            assert closed.value.rcvd.code == 1013
            obs, _ = env.reset(seed=0)
            first.send(pack(obs))  # the connected client is still served
            assert not isinstance(first.recv(), str)


def test_client_mistakes_are_bad_requests_named_and_logged_in_one_line(server, env, caplog):
    obs, _ = env.reset(seed=0)
    mistakes = {  # what a careless client sends -> the field the answer must name
        "empty image": ({**obs, "image": np.zeros((0, 0, 3), np.uint8)}, "image"),
        "string state": ({**obs, "state": np.array(["0.1"] * 7)}, "state"),
        "state of None": ({**obs, "state": [None] * 7}, "state"),
        "image None": ({**obs, "image": None}, "image"),
        "deep state": ({**obs, "state": _nested(100, 0.0)}, "nested"),
    }
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws, \
            caplog.at_level("INFO", logger="policies.server"):
        unpack(ws.recv())
        for name, (message, field) in mistakes.items():
            caplog.clear()
            ws.send(pack(message))
            reply = ws.recv()
            assert isinstance(reply, str) and reply.startswith("bad request: "), (name, reply)
            assert field in reply, (name, reply)
            assert not any(r.exc_info for r in caplog.records), name  # no traceback
            assert len([r for r in caplog.records if "bad request" in r.getMessage()]) == 1
        ws.send(b"\x91" * 5000 + b"\xc0")  # nested past msgpack's own stack
        reply = ws.recv()
        assert reply.startswith("bad request: ") and "nested deeper" in reply and \
            not reply.endswith("''"), reply
        ws.send(pack(obs))
        assert unpack(ws.recv())["actions"].shape == (8, 4)


def _nested(depth, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_junk_cannot_use_up_the_instruction_budget_and_it_bounds_the_policy_cache(policy, env):
    from policies.server import PolicyServer

    obs, _ = env.reset(seed=0)
    cache = policy.model.instructions
    shipped = set(cache.instructions)
    with PolicyServer(policy, port=0, max_instructions=2) as small, \
            connect(f"ws://127.0.0.1:{small.port}", max_size=None) as ws:
        unpack(ws.recv())
        for i in range(6):  # no state: invalid, must not count
            ws.send(pack({"image": obs["image"], "instruction": f"junk {i}"}))
            assert "missing keys" in ws.recv()
        for i in range(5):  # more new valid instructions than the budget: all served
            ws.send(pack({**obs, "instruction": f"put the thing number {i} away"}))
            reply = ws.recv()
            assert not isinstance(reply, str), reply
        kept = set(cache.instructions) - shipped
        assert kept == {"put the thing number 3 away", "put the thing number 4 away"}, kept
        ws.send(pack(obs))  # a shipped instruction is never dropped
        assert not isinstance(ws.recv(), str) and shipped <= set(cache.instructions)
