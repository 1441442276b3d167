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
otherwise, and nothing on the wire is pickled (:mod:`policies.wire`).
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


class BadRequest(ValueError):
    """An observation the policy cannot take (the text says why)."""


def check_observation(obs: Any) -> dict[str, Any]:
    """A received message as an observation dict: string keys, ``prompt`` -> ``instruction``.

    Raises:
        BadRequest: If the message is not a map with string keys.
    """
    if not isinstance(obs, dict):
        raise BadRequest(f"an observation must be a map, got {type(obs).__name__}")
    bad = [k for k in obs if not isinstance(k, str)]
    if bad:
        raise BadRequest(f"observation keys must be strings, got {bad!r}")
    obs = dict(obs)
    if "instruction" not in obs and "prompt" in obs:
        obs["instruction"] = obs.pop("prompt")
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
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
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
        """Stop accepting connections and close the socket."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def answer(self, message: bytes | str) -> bytes | str:
        """The reply to one client message: packed result, or a text frame naming the error."""
        try:
            obs = check_observation(unpack(message))
            tic = time.perf_counter()
            with self._lock:
                result = dict(self.policy.infer(obs))
            result["actions"] = check_actions(result)
            result["server_timing"] = {"infer_ms": 1e3 * (time.perf_counter() - tic)}
            reply = pack(result)
        except ValueError as err:  # WireError, BadRequest, PolicyOutputError, the model's checks
            self.errors += 1
            return f"bad request: {err}"
        except Exception as err:  # noqa: BLE001 - one client's failure must not stop the server
            self.errors += 1
            log.exception("policy failed on a request")
            return f"server error: {type(err).__name__}: {err}"
        self.requests += 1
        return reply

    def _handle(self, ws: Any) -> None:
        """One client connection: send the metadata, then answer every message."""
        from websockets.exceptions import ConnectionClosed

        peer = ws.remote_address
        log.info("client %s connected", peer)
        try:
            ws.send(pack(self.metadata))
            for message in ws:
                ws.send(self.answer(message))
        except ConnectionClosed:
            pass
        log.info("client %s left", peer)


def _health_check(connection: Any, request: Any) -> Any:
    """Answer ``GET /healthz`` with 200 (as openpi's server); let other paths upgrade."""
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


def vla_metadata(policy: Any) -> dict[str, Any]:
    """What a client needs to know about a :class:`~policies.vla_policy.VLAPolicy`."""
    cfg = policy.model.config
    return {"server": "robodecode", "decoder": str(policy.spec), "checkpoint": str(policy.path),
            "head": cfg.head, "action_horizon": int(cfg.horizon),
            "action_dim": int(cfg.action_dim), "state_dim": int(cfg.state_dim),
            "cameras": list(cfg.cameras), "image_size": int(cfg.image_size),
            "observation_keys": [*cfg.cameras, "state", "instruction"],
            "actions_dtype": np.dtype(np.float32).str}
