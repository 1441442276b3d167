"""A policy behind openpi's websocket protocol, so the published ``openpi-client`` drives it.

    robodecode serve --policy experiments/checkpoints/TabletopPickPlace-v0/seed0 --decoder oft

and on the robot side, unchanged openpi code::

    from openpi_client.websocket_client_policy import WebsocketClientPolicy
    client = WebsocketClientPolicy("127.0.0.1", 8000)
    actions = client.infer({"image": img, "state": state, "instruction": "put ..."})["actions"]

Protocol (openpi's ``WebsocketPolicyServer``): on connect the server sends the policy's metadata
as one binary msgpack-numpy message; then every binary message from the client is an
observation and is answered with ``policy.infer(obs)`` plus ``server_timing``. openpi's
``prompt`` key is accepted for ``instruction``. ``GET /healthz`` answers 200.

Bad input never stops the server: a message that is not msgpack-numpy, an observation with
missing keys, wrong shapes or NaN, or a policy output with NaN is answered with a text frame
naming the problem (``openpi-client`` raises it as ``RuntimeError``), the connection stays open
for the next request and other clients are not affected. Each connection has its own thread;
inference is serialized by a lock (one model). The server binds 127.0.0.1 unless told
otherwise, and nothing on the wire is pickled (:mod:`policies.wire`). What one client can make
it hold is bounded: messages of 16 MiB, lists and maps of 4,096 elements, one (H, W, 3) frame
per camera, instructions of 512 characters and 2,048 distinct instructions per server, 64
connections at once (the next is closed with code 1013).
"""

from __future__ import annotations

import http
import logging
import threading
import time
from typing import Any

import numpy as np

from policies.base import Policy, check_actions
from policies.wire import pack, unpack

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 2**20
"""Largest accepted message (16 MiB, ~100 uncompressed 224 px frames); a bigger one closes that
client's connection with code 1009 and nothing else."""

MAX_CLIENTS = 64
"""Connections served at once; one more is closed at once with code 1013 (try again later)."""

MAX_INSTRUCTION_CHARS = 512
MAX_INSTRUCTIONS = 2048
"""Distinct instruction strings one server accepts: each new one is embedded (MiniLM) and kept
by the policy, so their number and length are bounded."""


class BadRequest(ValueError):
    """An observation the policy cannot take (the text says why)."""


def check_observation(obs: Any) -> dict[str, Any]:
    """A received message as one observation: string keys, ``prompt`` -> ``instruction``.

    Raises:
        BadRequest: If the message is not a map with string keys, an image is not one
            ``(H, W, 3)`` frame, or the instruction is not a string of at most
            :data:`MAX_INSTRUCTION_CHARS` characters.
    """
    if not isinstance(obs, dict):
        raise BadRequest(f"an observation must be a map, got {type(obs).__name__}")
    bad = [k for k in obs if not isinstance(k, str)]
    if bad:
        raise BadRequest(f"observation keys must be strings, got {len(bad)} other key(s)")
    obs = dict(obs)
    if "instruction" not in obs and "prompt" in obs:
        obs["instruction"] = obs.pop("prompt")
    for key, value in obs.items():
        if "image" in key and isinstance(value, np.ndarray) and (
                value.ndim != 3 or value.shape[-1] != 3):
            raise BadRequest(f"{key} must be one (H, W, 3) frame, got shape "
                             f"{value.shape[:8]}")
    text = obs.get("instruction")
    if text is not None and not isinstance(text, str):
        raise BadRequest(f"instruction must be a string, got {type(text).__name__}")
    if text is not None and len(text) > MAX_INSTRUCTION_CHARS:
        raise BadRequest(f"instruction must be at most {MAX_INSTRUCTION_CHARS} characters, got "
                         f"{len(text)}")
    return obs


class PolicyServer:
    """Serve one :class:`~policies.base.Policy` to any number of openpi clients.

    Args:
        policy: What answers ``infer`` (shared by all clients, called under a lock).
        host: Interface to bind; the default serves this machine only.
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        metadata: Sent to each client on connect; defaults to ``policy.metadata`` if the policy
            has one.
        max_message_bytes: Largest accepted message.
    """

    def __init__(self, policy: Policy, host: str = "127.0.0.1", port: int = 8000,
                 metadata: dict[str, Any] | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        from websockets.sync.server import serve

        self.policy = policy
        self.metadata = metadata if metadata is not None else dict(
            getattr(policy, "metadata", {}))
        self._lock = threading.Lock()  # one model: inference is serialized
        self._count_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._thread: threading.Thread | None = None
        self._instructions: set[str] = set()
        self.requests = 0
        self.errors = 0
        self._server = serve(self._handle, host, port, compression=None,
                             max_size=max_message_bytes, process_request=_health_check)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.socket.getsockname()[1]

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or Ctrl-C)."""
        self._server.serve_forever()

    def start(self) -> PolicyServer:
        """Serve from a background thread; returns ``self``."""
        self._thread = threading.Thread(target=self.serve_forever, name="policy-server",
                                        daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop accepting connections, close open ones and the socket."""
        if self._thread is None:  # never served: websockets' shutdown() would wait forever
            self._server.socket.close()
            return
        self._server.shutdown()
        self._thread.join(timeout=5)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def answer(self, message: bytes | str) -> bytes | str:
        """The reply to one client message: packed result, or a text frame naming the error."""
        try:
            obs = check_observation(unpack(message))
            self._admit_instruction(obs.get("instruction"))
        except ValueError as err:  # WireError, BadRequest: the client's message
            return self._error(f"bad request: {err}")
        try:
            with self._lock:
                tic = time.perf_counter()
                result = dict(self.policy.infer(obs))
                infer_ms = 1e3 * (time.perf_counter() - tic)
        except ValueError as err:  # the policy's own checks of the observation
            return self._error(f"bad request: {err}")
        except Exception as err:  # noqa: BLE001 - one client's failure must not stop the server
            log.exception("policy failed on a request")
            return self._error(f"server error: {type(err).__name__}: {err}")
        try:
            result["actions"] = check_actions(result)
            result["server_timing"] = {"infer_ms": infer_ms}
            reply = pack(result)
        except ValueError as err:  # NaN actions or an unpackable result: the policy's fault
            log.error("policy output refused: %s", err)
            return self._error(f"server error: {err}")
        with self._count_lock:
            self.requests += 1
        return reply

    def _admit_instruction(self, text: str | None) -> None:
        """Bound the distinct instructions (each is embedded and kept by the policy)."""
        if text is None or text in self._instructions:
            return
        with self._count_lock:
            if len(self._instructions) >= MAX_INSTRUCTIONS:
                raise BadRequest(f"this server has seen {MAX_INSTRUCTIONS} distinct "
                                 "instructions; reuse one or restart it")
            self._instructions.add(text)

    def _error(self, text: str) -> str:
        with self._count_lock:
            self.errors += 1
        return text

    def _handle(self, ws: Any) -> None:
        """One client connection: send the metadata, then answer every message."""
        from websockets.exceptions import ConnectionClosed

        if not self._slots.acquire(blocking=False):
            ws.close(code=1013, reason=f"server busy: {MAX_CLIENTS} clients connected")
            return
        peer = ws.remote_address
        log.info("client %s connected", peer)
        try:
            ws.send(pack(self.metadata))
            for message in ws:
                ws.send(self.answer(message))
        except ConnectionClosed:
            pass
        finally:
            self._slots.release()
        log.info("client %s left", peer)


def _health_check(connection: Any, request: Any) -> Any:
    """Answer ``GET /healthz`` with 200 (as openpi's server); let other paths upgrade."""
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None
