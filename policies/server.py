"""A policy behind openpi's websocket protocol, so the published ``openpi-client`` drives it.

    robodecode serve --policy experiments/checkpoints/TabletopPickPlace-v0/seed0 --decoder oft

and on the robot side, unchanged openpi code::

    from openpi_client.websocket_client_policy import WebsocketClientPolicy
    client = WebsocketClientPolicy("127.0.0.1", 8000)  # api_key=... if the server has one
    actions = client.infer({"image": img, "state": state, "instruction": "put ..."})["actions"]

Protocol (openpi's ``WebsocketPolicyServer``): on connect the server sends the policy's metadata
as one binary msgpack-numpy message; then every binary message from the client is an
observation and is answered with ``policy.infer(obs)`` plus ``server_timing``. openpi's
``prompt`` key is accepted for ``instruction``. Real-time chunking clients may add
``prev_actions`` (the committed actions, an (m, D) float array, m <= 1,024) and
``frozen_steps`` (an int, 0 <= frozen_steps <= m); clients that send neither (plain
``openpi-client``) get chunks decoded as before. ``GET /healthz`` answers 200, or 503 while every
connection slot is taken; it needs no key. ``GET /metrics`` (JSON: :mod:`policies.server_metrics`)
passes the origin and API-key checks of a handshake: it shows who uses the robot how much,
and a scraper can send a key (Prometheus: ``authorization: {type: Api-Key, ...}``).

Batching (``batching=BatchConfig(window_ms, max_batch)``, default 2 ms and 64; when a batch
goes: :mod:`policies.batching`): requests of clients that arrive close together are answered
by one ``policy.infer_batch`` call, each with its own answer (one the policy refuses gets its
own ``bad request: ...``; the rest of its batch is served). ``SERIAL`` (``max_batch=1``)
serves one at a time, as before. ``server_timing``: ``infer_ms``, ``queue_ms``, ``batch_size``.

Access: with an API key (``api_key=``, ``--api-key`` or ``$ROBODECODE_API_KEY``) the opening
handshake must carry ``Authorization: Api-Key <key>`` (what openpi's client sends), compared in
constant time, or it is refused with HTTP 401. A handshake with an ``Origin`` header (a browser
page) is refused with 403 unless that origin is allowed (``allow_origins``, ``--allow-origin``).

Bad input never stops the server: a message that is not msgpack-numpy, an observation with
missing keys, wrong shapes, types or NaN, or a policy output with NaN is answered with a text
frame naming the problem (``openpi-client`` raises it as ``RuntimeError``): ``bad request: ...``
for the client's mistakes (logged in one line), ``server error: ...`` for the policy's failures
(logged with a traceback). The connection stays open for the next request and other clients
are not affected. Each connection has its own thread; inference runs in one thread at a time
(one model). The server binds 127.0.0.1 unless told otherwise, and nothing on the wire is pickled
(:mod:`policies.wire`).

What clients can make it hold is bounded:

- messages of 16 MiB (a bigger one closes that connection with code 1009), of at most 16,384
  msgpack objects nested at most 32 deep, lists and maps of 4,096 elements, all checked before
  the message is decoded (:func:`policies.wire.unpack`); at most two received messages queue
  per connection;
- one (H, W, 3) frame per camera, instructions of 512 characters, error texts of 500;
- cached instruction embeddings: the policy keeps the 2,048 most recently served instructions
  (a least-recently-used set; a policy with ``forget_instruction(text)`` is told to drop the
  rest, and an instruction whose request failed is dropped at once); only requests that were
  answered count;
- 64 connections at once and 16 per client address (the next is closed with code 1013);
  a connection idle for 300 s, or a reply the client has not read within 10 s, closes it and
  frees its slot, and a slot is released whatever way a connection ends.
"""

from __future__ import annotations

import collections
import hmac
import http
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from policies.base import Policy, check_actions
from policies.batching import DEFAULT_BATCHING, BatchConfig, MicroBatcher, infer_each
from policies.request_checks import BadRequest, check_observation, clip_error
from policies.server_metrics import ServerMetrics
from policies.wire import MAX_DEPTH, MAX_OBJECTS, pack, unpack

__all__ = ["API_KEY_ENV", "BadRequest", "PolicyServer", "check_observation"]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 2**20
"""Largest accepted message (16 MiB, ~100 uncompressed 224 px frames); a bigger one closes that
client's connection with code 1009 and nothing else."""

MAX_CLIENTS = 64
"""Connections served at once; one more is closed at once with code 1013 (try again later)."""

MAX_CLIENTS_PER_IP = 16
"""Connections served at once to one client address (behind a proxy, raise it)."""

IDLE_TIMEOUT = 300.0
"""Seconds a connection may go without sending a request before it is closed."""

SEND_TIMEOUT = 10.0
"""Seconds a reply may take to be written (a client that stops reading is closed)."""

MAX_INSTRUCTIONS = 2048
"""Distinct instruction strings whose embeddings the policy keeps for the server (the most
recently served ones); each new one is embedded (MiniLM) once."""

API_KEY_ENV = "ROBODECODE_API_KEY"
"""Environment variable ``robodecode serve`` reads the API key from (the class reads none)."""


class _Answer(NamedTuple):
    """What inference gave one request: a result or an exception, and how it was computed."""

    outcome: Any
    infer_ms: float
    batch_size: int


class PolicyServer:
    """Serve one :class:`~policies.base.Policy` to any number of openpi clients.

    Args:
        policy: What answers ``infer`` (shared by all clients, called from one thread at a
            time). If it has ``infer_batch(observations) -> outcomes`` (a result or an
            exception per observation, as :meth:`policies.vla_policy.VLAPolicy.infer_batch`),
            batches of requests are answered by one call. If it has ``forget_instruction(text)``,
            the server calls it to bound the instructions kept.
        host: Interface to bind; the default serves this machine only.
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        metadata: Sent to each client on connect; defaults to ``policy.metadata`` if the policy
            has one.
        max_message_bytes: Largest accepted message.
        max_clients: Connections served at once.
        max_clients_per_ip: Connections served at once to one client address.
        max_instructions: Distinct instructions the policy keeps embedded (least recently used
            ones are forgotten).
        idle_timeout: Seconds without a request after which a connection is closed.
        send_timeout: Seconds a reply (or the metadata) may take to be written.
        api_key: If set, clients (and ``GET /metrics``) must send
            ``Authorization: Api-Key <key>``.
        allow_origins: ``Origin`` header values accepted; a handshake with any other origin
            (a browser page) is refused.
        batching: How requests of concurrent clients are batched
            (:class:`~policies.batching.BatchConfig`; ``SERIAL`` for one at a time).

    Raises:
        ValueError: If a bound is not positive (the text names it).
    """

    def __init__(self, policy: Policy, host: str = "127.0.0.1", port: int = 8000,
                 metadata: dict[str, Any] | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, max_clients: int = MAX_CLIENTS,
                 max_clients_per_ip: int = MAX_CLIENTS_PER_IP,
                 max_instructions: int = MAX_INSTRUCTIONS, idle_timeout: float = IDLE_TIMEOUT,
                 send_timeout: float = SEND_TIMEOUT, api_key: str | None = None,
                 allow_origins: Iterable[str] = (),
                 batching: BatchConfig = DEFAULT_BATCHING) -> None:
        from websockets.sync.server import serve

        for name, value in (("max_message_bytes", max_message_bytes),
                            ("max_clients", max_clients),
                            ("max_clients_per_ip", max_clients_per_ip),
                            ("max_instructions", max_instructions),
                            ("idle_timeout", idle_timeout), ("send_timeout", send_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if api_key is not None and not api_key:
            raise ValueError("api_key must be a non-empty string or None")
        if not isinstance(batching, BatchConfig):
            raise ValueError(f"batching must be a BatchConfig, got {type(batching).__name__}")
        self.policy = policy
        self.metadata = metadata if metadata is not None else dict(
            getattr(policy, "metadata", {}))
        self.max_clients, self.max_clients_per_ip = max_clients, max_clients_per_ip
        self.max_instructions = max_instructions
        self.idle_timeout, self.send_timeout = idle_timeout, send_timeout
        self._api_key = api_key.encode() if api_key is not None else None
        self.allow_origins = frozenset(allow_origins)
        self.batching = batching
        self.metrics = ServerMetrics()
        self._lock = threading.Lock()  # one model: one inference at a time (serial mode)
        self._count_lock = threading.Lock()  # slots
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._instructions: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._thread: threading.Thread | None = None
        self._server = serve(self._handle, host, port, compression=None,
                             max_size=max_message_bytes, max_queue=2,
                             close_timeout=send_timeout, process_request=self._check_request)
        self._batcher = MicroBatcher(self._run_batch, batching, capacity=lambda: self.connections
                                     ) if batching.batched else None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.socket.getsockname()[1]

    @property
    def connections(self) -> int:
        """Connections holding a slot now."""
        with self._count_lock:
            return sum(self._per_ip.values())

    @property
    def requests(self) -> int:
        """Requests answered with actions."""
        return self.metrics.requests

    @property
    def errors(self) -> int:
        """Requests answered with an error text."""
        return self.metrics.errors

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
        if self._batcher is not None:  # waiting requests are answered with a server error
            self._batcher.close()
        if self._thread is None:  # never served: websockets' shutdown() would wait forever
            self._server.socket.close()
            return
        self._server.shutdown()
        self._thread.join(timeout=5)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def answer(self, message: bytes | str, peer: Any = None) -> bytes | str:
        """The reply to one client message: packed result, or a text frame naming the error."""
        tic = time.perf_counter()
        ticket = self._batcher.announce() if self._batcher is not None else None
        try:
            try:
                obs = check_observation(unpack(message, MAX_OBJECTS, MAX_DEPTH))
            except ValueError as err:  # WireError, BadRequest: the client's message
                return self._bad_request(err, peer)
            if self._batcher is None:
                with self._lock:
                    answer, queued_s = self._run_batch([obs])[0], 0.0
            else:
                answer, queued_s = self._batcher.submit(obs, ticket)
        finally:
            if ticket is not None:  # refused (or failed) before it was queued
                self._batcher.withdraw(ticket)
        if not isinstance(answer, _Answer):  # the batch itself failed: an exception
            answer = _Answer(answer, 0.0, 0)
        outcome = answer.outcome
        if isinstance(outcome, ValueError):  # the policy's own checks of the observation
            return self._bad_request(outcome, peer)
        if isinstance(outcome, Exception):  # one client's failure must not stop the server
            log.error("policy failed on a request from %s", peer, exc_info=outcome)
            detail = f": {outcome}" if str(outcome) else ""
            return self._server_error(f"server error: {type(outcome).__name__}{detail}")
        try:
            actions = check_actions(outcome)
            reply = pack({**outcome, "actions": actions, "server_timing": {
                "infer_ms": answer.infer_ms, "queue_ms": 1e3 * queued_s,
                "batch_size": answer.batch_size}})
        except ValueError as err:  # NaN actions or an unpackable result: the policy's fault
            log.error("policy output refused: %s", err)
            return self._server_error(f"server error: {str(err) or type(err).__name__}")
        self.metrics.served(time.perf_counter() - tic)
        return reply

    def _run_batch(self, observations: list[dict[str, Any]]) -> list[_Answer]:
        """Infer a batch (in one thread at a time), then track the instructions it served."""
        tic = time.perf_counter()
        infer_batch = getattr(self.policy, "infer_batch", None)
        try:
            outcomes = list(infer_batch(observations)) if infer_batch is not None and \
                len(observations) > 1 else infer_each(self.policy, observations)
            if len(outcomes) != len(observations):
                raise RuntimeError(f"infer_batch returned {len(outcomes)} results for "
                                   f"{len(observations)} observations")
        except Exception as err:  # noqa: BLE001 - every request of the batch is told
            outcomes = [err] * len(observations)
        infer_ms = 1e3 * (time.perf_counter() - tic)
        self.metrics.batch(len(observations))
        served = [not isinstance(o, BaseException) for o in outcomes]
        order = sorted(range(len(outcomes)), key=lambda i: not served[i])  # served ones first
        try:
            for i in order:
                self._keep_instruction(observations[i].get("instruction"), served[i])
        except Exception:  # noqa: BLE001 - the answers stand; the cache is only an upper bound
            log.exception("forgetting instructions failed")
        return [_Answer(o, infer_ms, len(observations)) for o in outcomes]

    def _keep_instruction(self, text: Any, served: bool) -> None:
        """Track served instructions as an LRU set; make the policy forget the rest.

        Runs in the thread that runs inference, after the batch, so no request is using an
        embedding being dropped.
        """
        if not isinstance(text, str):
            return
        forget = getattr(self.policy, "forget_instruction", None)
        if not served:  # a failed request keeps nothing it made the policy embed
            if text not in self._instructions and forget is not None:
                forget(text)
            return
        self._instructions[text] = None
        self._instructions.move_to_end(text)
        while len(self._instructions) > self.max_instructions:
            old, _ = self._instructions.popitem(last=False)
            if forget is not None:
                forget(old)

    def _bad_request(self, err: Exception, peer: Any) -> str:
        text = clip_error(f"bad request: {str(err) or type(err).__name__}")
        log.warning("%s from %s", text, peer)
        self.metrics.failed(bad_request=True)
        return text

    def _server_error(self, text: str) -> str:
        self.metrics.failed(bad_request=False)
        return clip_error(text)

    def metrics_snapshot(self) -> dict[str, Any]:
        """What ``GET /metrics`` answers (see :mod:`policies.server_metrics`)."""
        return {**self.metrics.snapshot(), "connections": self.connections,
                "max_clients": self.max_clients, "batch_window_ms": self.batching.window_ms,
                "max_batch": self.batching.max_batch}

    def _enter(self, ip: str) -> str | None:
        """Take a slot for ``ip``; ``None`` if taken, else the reason it cannot be had."""
        with self._count_lock:
            if sum(self._per_ip.values()) >= self.max_clients:
                return f"server busy: {self.max_clients} clients connected"
            if self._per_ip[ip] >= self.max_clients_per_ip:
                return f"{ip} already has {self.max_clients_per_ip} connections"
            self._per_ip[ip] += 1
        return None

    def _leave(self, ip: str) -> None:
        with self._count_lock:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    def _handle(self, ws: Any) -> None:
        """One client connection: send the metadata, then answer every message until idle."""
        from websockets.exceptions import ConnectionClosed

        ip = None
        try:  # everything, slot included, inside: a slot is released however the client leaves
            peer = ws.remote_address  # OSError if the client reset right after the handshake
            refused = self._enter(peer[0])
            if refused is not None:
                ws.close(code=1013, reason=refused)
                return
            ip = peer[0]
            ws.socket.settimeout(self.send_timeout)  # bounds each send (and the close)
            log.info("client %s connected", peer)
            ws.send(pack(self.metadata))
            while True:
                try:
                    message = ws.recv(timeout=self.idle_timeout)
                except TimeoutError:
                    log.info("client %s idle for %g s: closing", peer, self.idle_timeout)
                    ws.close(code=1001, reason=f"idle for {self.idle_timeout:g} s")
                    return
                ws.send(self.answer(message, peer))
        except (ConnectionClosed, OSError):
            pass
        finally:
            if ip is not None:
                self._leave(ip)
                log.info("client %s left", ip)

    def _check_request(self, connection: Any, request: Any) -> Any:
        """Health checks, then the origin and API-key checks of a handshake or ``/metrics``."""
        if request.path == "/healthz":
            with self._count_lock:
                full = sum(self._per_ip.values()) >= self.max_clients
            if full:
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                          "no connection slot free\n")
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        origins = request.headers.get_all("Origin")  # a header sent twice counts as wrong
        if origins and (len(origins) > 1 or origins[0] not in self.allow_origins):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self._api_key is not None:
            keys = request.headers.get_all("Authorization")
            scheme, _, given = (keys[0] if len(keys) == 1 else "").partition(" ")
            if scheme != "Api-Key" or not hmac.compare_digest(given.encode(), self._api_key):
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong API "
                                          "key (Authorization: Api-Key ...)\n")
        if request.path == "/metrics":
            response = connection.respond(http.HTTPStatus.OK,
                                          json.dumps(self.metrics_snapshot()) + "\n")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        return None
