"""Denial-of-service and abuse attempts against a real policy server on 127.0.0.1.

Each test plays one attacker (or one careless client) against a :class:`PolicyServer` bound to
a free port, with small limits passed to the constructor so that every attack finishes in about
a second, and then checks that well-behaved clients are still served.
"""

import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from policies.base import Policy
from policies.server import PolicyServer
from policies.wire import WireError, pack, unpack

openpi_client = pytest.importorskip("openpi_client.websocket_client_policy")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # openpi-client 0.1.2's own connect() call
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")

OBS = {"image": np.zeros((8, 8, 3), np.uint8), "state": np.zeros(3, np.float32),
       "instruction": "reach"}


class ZeroPolicy(Policy):
    """Answers every observation with a (2, 3) chunk of zeros; optional bulky metadata."""

    def __init__(self, metadata_bytes: int = 0) -> None:
        self.metadata = {"blob": b"\x00" * metadata_bytes}

    def infer(self, obs):
        return {"actions": np.zeros((2, 3), np.float32)}


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def _served(port: int, **kwargs) -> bool:
    """Whether a fresh openpi client gets an answer within a few seconds."""
    client = openpi_client.WebsocketClientPolicy("127.0.0.1", port, **kwargs)
    try:
        return client.infer(OBS)["actions"].shape == (2, 3)
    finally:
        client._ws.close()


def _try_served(port: int) -> bool:
    try:
        return _served(port)
    except ConnectionClosed:  # 1013: no slot
        return False


def _handshake(port: int, headers: str = "") -> socket.socket:
    """A raw TCP socket that completed the websocket opening handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(1)
        assert chunk, reply
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 101"), reply
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_connections_reset_after_the_handshake_do_not_leak_slots():
    with PolicyServer(ZeroPolicy(), port=0, max_clients=4) as server:
        for _ in range(40):  # each one completes the handshake, then resets at once
            _reset(_handshake(server.port))
        assert _wait_until(lambda: _try_served(server.port), 5)
        assert _health(server.port) == 200


def test_a_memory_bomb_is_refused_before_it_is_built():
    # openpi's worst case scaled down: 512 arrays of 4,096 empty maps (2 MiB, 2.1 M objects),
    # each list within the per-list cap; the full 16 MiB one expanded to +1.17 GiB.
    bomb = b"\xdd" + (512).to_bytes(4, "big") + (b"\xdc\x10\x00" + b"\x80" * 4096) * 512
    peak, stop = [_rss_bytes()], threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(_rss_bytes())
            time.sleep(0.002)

    with PolicyServer(ZeroPolicy(), port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        unpack(ws.recv())
        before = _rss_bytes()
        sampler = threading.Thread(target=sample)
        sampler.start()
        tic = time.perf_counter()
        try:
            ws.send(bomb)
            reply = ws.recv(timeout=10)
        finally:
            stop.set()
            sampler.join()
        elapsed = time.perf_counter() - tic
        assert max(peak) - before < 48 * 2**20, (max(peak) - before) / 2**20
        assert elapsed < 1.0, elapsed
        assert isinstance(reply, str) and reply.startswith("bad request:") and "objects" in reply
        ws.send(pack(OBS))  # and the connection still serves
        assert unpack(ws.recv())["actions"].shape == (2, 3)
    with pytest.raises(WireError, match="nested deeper"):
        unpack(b"\x91" * 5000 + b"\xc0")
    with pytest.raises(WireError, match="more than 10 objects"):
        unpack(pack(list(range(20))), max_objects=10)


def test_idle_clients_and_clients_that_never_read_lose_their_slot():
    with PolicyServer(ZeroPolicy(metadata_bytes=8 * 2**20), port=0, max_clients=2,
                      idle_timeout=0.5, send_timeout=0.5) as server:
        idle = connect(f"ws://127.0.0.1:{server.port}", max_size=None)
        idle.recv()  # reads the metadata, then says nothing
        stuck = _handshake(server.port)  # never reads the 8 MiB metadata
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert _wait_until(lambda: server.connections == 2, 2)
        assert _health(server.port) == 503  # no slot can be had
        assert _wait_until(lambda: server.connections == 0, 5), server.connections
        with pytest.raises(ConnectionClosed):
            idle.recv(timeout=2)
        assert _health(server.port) == 200 and _served(server.port)
        stuck.close()


def test_one_address_cannot_take_every_slot():
    with PolicyServer(ZeroPolicy(), port=0, max_clients=4, max_clients_per_ip=2) as server:
        url = f"ws://127.0.0.1:{server.port}"
        first, second = connect(url, max_size=None), connect(url, max_size=None)
        first.recv(), second.recv()
        third = connect(url, max_size=None)
        with pytest.raises(ConnectionClosed) as closed:
            third.recv(timeout=5)
        assert closed.value.rcvd.code == 1013 and "127.0.0.1" in closed.value.rcvd.reason
        first.close()
        assert _wait_until(lambda: server.connections == 1)
        assert _served(server.port)
        second.close()


def test_api_key_and_browser_origins():
    with PolicyServer(ZeroPolicy(), port=0, api_key="s3cret") as server:
        assert _served(server.port, api_key="s3cret")
        for key in ("wrong", None):
            with pytest.raises(InvalidStatus) as refused:
                openpi_client.WebsocketClientPolicy("127.0.0.1", server.port, api_key=key)
            assert refused.value.response.status_code == 401
        assert _health(server.port) == 200  # probes need no key
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{server.port}", origin="http://evil.example",
                    additional_headers={"Authorization": "Api-Key s3cret"})
        assert refused.value.response.status_code == 403
    with PolicyServer(ZeroPolicy(), port=0, allow_origins=["http://lab.example"]) as server:
        with connect(f"ws://127.0.0.1:{server.port}", origin="http://lab.example") as ws:
            assert "blob" in unpack(ws.recv())
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{server.port}", origin="http://evil.example")


class SilentFailurePolicy(Policy):
    """Fails with exceptions that carry no text."""

    def infer(self, obs):
        raise (ValueError() if obs["instruction"] == "value" else RuntimeError())


def test_every_error_text_says_something():
    with PolicyServer(SilentFailurePolicy(), port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}") as ws:
        unpack(ws.recv())
        ws.send(pack({**OBS, "instruction": "value"}))
        assert ws.recv() == "bad request: ValueError"
        ws.send(pack(OBS))
        assert ws.recv() == "server error: RuntimeError"


def test_serve_cli_takes_the_bounds_and_the_key(monkeypatch):
    from typer.testing import CliRunner

    from experiments.cli import build_app

    runner = CliRunner()
    res = runner.invoke(build_app(), ["serve", "--help"], terminal_width=200)
    for option in ("--api-key", "--allow-origin", "--idle-timeout", "--send-timeout",
                   "--max-clients", "--max-clients-per-ip", "ROBODECODE_API_KEY"):
        assert option in res.output, option
    res = runner.invoke(build_app(), ["serve", "--policy", ".", "--decoder", "oft",
                                      "--idle-timeout", "0"])
    assert res.exit_code == 2 and "must be positive" in res.output
    assert "Traceback" not in res.output


def _array_map(dtype: str) -> dict:
    return {b"__ndarray__": True, b"data": b"", b"dtype": dtype, b"shape": [0]}


def test_crafted_dtype_strings_are_refused_at_once():
    # numpy parses "(shape)type" dtype strings with ast.literal_eval: "(,)f4" raised a
    # SyntaxError that dropped the connection, and a 2 MB shape held the GIL for seconds.
    crafted = {"syntax": "(,)f4", "long": "(" + "1," * 10**6 + ")f4"}
    with PolicyServer(ZeroPolicy(), port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        unpack(ws.recv())
        for name, dtype in crafted.items():
            tic = time.perf_counter()
            ws.send(pack({**OBS, "extra": _array_map(dtype)}))
            reply = ws.recv(timeout=30)
            assert isinstance(reply, str) and reply.startswith("bad request:"), (name, reply)
            assert "dtype" in reply and len(reply) < 200, (name, reply[:200])
            assert time.perf_counter() - tic < 0.5, name
        ws.send(pack(OBS))
        assert unpack(ws.recv())["actions"].shape == (2, 3)


class EchoingPolicy(Policy):
    """Refuses every observation with a text that quotes what the request holds."""

    def infer(self, obs):
        raise ValueError(f"cannot use {obs.get('notes')}")


def test_error_texts_and_log_lines_stay_short_whatever_the_message_holds(caplog):
    huge = "x" * 2_000_000
    attempts = [{**OBS, "image" + huge: None},  # a client-chosen key, named in the answer
                {**OBS, "prev_actions": np.zeros((2, 3)), "frozen_steps": huge}]
    with PolicyServer(ZeroPolicy(), port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws, \
            caplog.at_level("INFO", logger="policies.server"):
        unpack(ws.recv())
        for message in attempts:
            ws.send(pack(message))
            reply = ws.recv(timeout=10)
            assert reply.startswith("bad request:") and len(reply) < 1000, reply[:200]
        ws.send(pack(OBS))
        assert unpack(ws.recv())["actions"].shape == (2, 3)
    assert "must be an (H, W, 3) array" in caplog.text and "frozen_steps must be" in caplog.text
    with PolicyServer(EchoingPolicy(), port=0) as server, \
            connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        unpack(ws.recv())
        ws.send(pack({**OBS, "notes": [huge]}))  # the policy's own text quotes the request
        reply = ws.recv(timeout=10)
        assert reply.startswith("bad request: cannot use") and len(reply) < 1000, reply[:200]
    assert max(len(r.getMessage()) for r in caplog.records) < 1000


def _status(port: int, headers: str) -> bytes:
    """The status line the server answers an opening handshake with ``headers`` with."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode())
        return sock.recv(4096).split(b"\r\n")[0]


def test_repeated_origin_or_key_headers_are_refused_not_crashed(caplog):
    key = "Authorization: Api-Key s3cret\r\n"
    with PolicyServer(ZeroPolicy(), port=0, api_key="s3cret",
                      allow_origins=["http://lab.example"]) as server:
        assert _status(server.port, key) == b"HTTP/1.1 101 Switching Protocols"
        assert _status(server.port, key * 2) == b"HTTP/1.1 401 Unauthorized"
        twice = "Origin: http://lab.example\r\n" * 2
        assert _status(server.port, key + twice) == b"HTTP/1.1 403 Forbidden"
        assert _served(server.port, api_key="s3cret")
    assert not any(r.exc_info for r in caplog.records)  # no traceback: not a server failure
