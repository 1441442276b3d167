"""The chunk broker: turns a chunk policy into a one-action-per-step controller.

Usage: ``broker = ChunkBroker(policy, k=8); broker.reset(seed=0); action = broker.act(obs)``

Like openpi's ``ActionChunkBroker`` the broker is a wrapper, so policies never hold action
queues. It keeps a timeline: every chunk is stamped with the env step of the observation it
was computed from (``start``), and at step ``t`` the executed action is ``chunk[t - start]``.

* **Replanning.** A new chunk is requested once ``k`` steps have passed since the latest chunk's
  observation (``k = H`` by default: execute the whole chunk).
* **Temporal ensembling** (ACT): with ``ensemble_decay=m`` the action at step ``t`` is the
  weighted mean of every chunk still covering ``t``, weight ``exp(-m * i)`` with ``i = 0`` for
  the oldest chunk (ACT's convention; ``m = 0`` is a plain mean). Usually paired with ``k = 1``.
* **Latency-aware stepping.** With ``latency`` set, a chunk requested at step ``t`` becomes
  available only at step ``t + n``, ``n = ceil(latency / control_dt)``, where latency is the
  measured wall time of ``infer`` (``"measured"``) or a fixed number of milliseconds. Meanwhile
  the env keeps executing the previous chunk (``chunk[t - start]`` continues); once the new
  chunk arrives it is used time-aligned, i.e. from index ``n``, because the first ``n`` actions
  belong to steps that have already happened. When a chunk runs out before the next one arrives
  the broker **holds the chunk's last action** (the policy's own latest command, so a gripper
  stays closed; a zero action would re-open it and punish latency through the action encoding
  rather than through staleness). The very first chunk of an episode is awaited with the env
  paused (the robot starts when its first plan is ready), so it has ``n = 0``.
* **Real-time chunking** (``rtc=True``, RTC). The next chunk is asked to continue what the
  robot is committed to: ``infer`` gets the observation plus ``prev_actions`` (the current
  chunk's actions for the new chunk's steps, time-aligned: row ``j`` is what the broker would
  execute at step ``t + j``, holding the last action past the chunk's end; ``H - (t - start)``
  rows, at least ``d``) and ``frozen_steps`` ``d``: the steps that will execute before the new
  chunk arrives, ``d = min(ceil(latency / control_dt), H - 1)`` with the declared latency, or
  with the previous ``infer`` call's wall time when measured. The policy freezes those ``d``
  steps (see ``VLAModel.predict_chunk``); a policy that ignores the keys behaves as before.
  Both keys are plain msgpack-numpy values, so RTC also works through the policy server.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from policies.base import Policy, check_actions, reset_policy

MEASURED = "measured"


@dataclass(frozen=True)
class ChunkStats:
    """What one ``Policy.infer`` call cost.

    Attributes:
        step: Env step of the observation the chunk was computed from.
        ms: Wall time of ``infer`` end to end, in milliseconds.
        nfe: Decoder forward passes after the prefix, when the policy reports them.
        prefix_nfe: Passes spent encoding the observation prefix, when reported.
        horizon: Chunk length H.
        delay_steps: Steps the env kept executing the previous chunk while this one decoded.
        decode_ms: The decoder's share of ``ms`` (``policy_timing["decode_ms"]``), when
            reported.
        frozen_steps: Real-time chunking: committed steps of the previous chunk sent as the
            frozen prefix of this one (0 without RTC).
    """

    step: int
    ms: float
    nfe: int | None
    prefix_nfe: int | None
    horizon: int
    delay_steps: int
    decode_ms: float | None = None
    frozen_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the stats as a plain dict."""
        return asdict(self)


def latency_steps(latency_ms: float, control_dt: float) -> int:
    """Return ``ceil(latency / control_dt)``: env steps that pass while a chunk decodes."""
    if latency_ms < 0 or control_dt <= 0:
        raise ValueError(f"need latency_ms >= 0 and control_dt > 0, got {latency_ms}, "
                         f"{control_dt}")
    return max(0, math.ceil(latency_ms / 1000.0 / control_dt - 1e-9))


class ChunkBroker:
    """Execute the first ``k`` actions of each chunk, then replan (see the module docstring).

    Args:
        policy: Any :class:`~policies.base.Policy`.
        k: Actions executed per chunk before replanning; ``None`` means the whole chunk (H).
        ensemble_decay: ACT temporal-ensembling rate ``m``; ``None`` disables ensembling.
        latency: ``None`` (the env waits for the policy), ``"measured"`` (each call's wall
            time) or a fixed latency in milliseconds.
        control_dt: Seconds per env step; required when ``latency`` is set.
        action_dim: The env's action dimension, checked on every chunk when given.
        rtc: Real-time chunking: send the committed actions with each request after the
            first (``prev_actions``, ``frozen_steps``; see the module docstring).
    """

    def __init__(self, policy: Policy, k: int | None = None, *,
                 ensemble_decay: float | None = None, latency: str | float | None = None,
                 control_dt: float | None = None, action_dim: int | None = None,
                 rtc: bool = False) -> None:
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be a positive int or None, got {k!r}")
        if ensemble_decay is not None and ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {ensemble_decay}")
        if latency is not None and latency != MEASURED:
            if isinstance(latency, str) or latency < 0:
                raise ValueError(f"latency must be None, 'measured' or ms >= 0, got {latency!r}")
        if latency is not None and (control_dt is None or control_dt <= 0):
            raise ValueError(f"control_dt must be > 0 when latency is set, got {control_dt!r}")
        if rtc and ensemble_decay is not None:
            raise ValueError("rtc does not combine with ensemble_decay (executed actions would "
                             "be blends of chunks)")
        self.rtc = bool(rtc)
        self.policy = policy
        self.k_requested = k
        self.ensemble_decay = ensemble_decay
        self.latency = latency
        self.control_dt = control_dt
        self.action_dim = action_dim
        self._clear()

    @property
    def k(self) -> int | None:
        """The effective k (known once the first chunk fixed H when ``k=None``)."""
        return self._k

    def reset(self, *, seed: int | None = None) -> None:
        """Start a new episode: clear the timeline and reset the wrapped policy.

        Our policies get the episode's seed; an ``openpi_client`` ``BasePolicy`` (such as its
        ``WebsocketClientPolicy`` in front of our server) gets openpi's plain ``reset()``.
        """
        self._clear()
        reset_policy(self.policy, seed)

    def _clear(self) -> None:
        self._t = 0
        self._k = self.k_requested
        self._chunks: list[tuple[int, np.ndarray]] = []  # available (start, actions), oldest first
        self._pending: tuple[int, int, np.ndarray] | None = None  # (start, ready, actions)
        self.chunk_stats: list[ChunkStats] = []
        self.switch_steps: list[int] = []
        """Steps whose action is the first one taken from a newly arrived chunk."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return the action for the current step and advance the clock by one step.

        Raises:
            PolicyOutputError: If the policy returns something other than a finite (H, D) chunk.
            ValueError: If ``k`` exceeds the chunk length.
        """
        t = self._t
        if self._pending is not None and t >= self._pending[1]:  # the decoding chunk arrives
            start, _, actions = self._pending
            self._activate(start, actions)
        if self._pending is None and (not self._chunks or t - self._chunks[-1][0] >= self._k):
            self._request(obs, t)
        self._t += 1
        return self._action_at(t)

    def _request(self, obs: dict[str, Any], t: int) -> None:
        """Call the policy on ``obs`` and schedule its chunk on the timeline."""
        frozen = 0
        if self.rtc and self._chunks:
            obs, frozen = self._with_committed(obs, t)
        tic = time.perf_counter()
        result = self.policy.infer(obs)
        ms = (time.perf_counter() - tic) * 1000.0
        actions = check_actions(result, self.action_dim)
        horizon = actions.shape[0]
        if self._k is None:
            self._k = horizon
        elif self._k > horizon:
            raise ValueError(f"k={self._k} exceeds the policy's chunk length H={horizon}")
        delay = 0
        if self.latency is not None and self._chunks:
            latency_ms = ms if self.latency == MEASURED else float(self.latency)
            delay = latency_steps(latency_ms, self.control_dt)
        self.chunk_stats.append(ChunkStats(
            step=t, ms=ms, nfe=_optional_int(result.get("nfe")),
            prefix_nfe=_optional_int(result.get("prefix_nfe")), horizon=horizon,
            delay_steps=delay, decode_ms=(result.get("policy_timing") or {}).get("decode_ms"),
            frozen_steps=frozen))
        if delay == 0:
            self._activate(t, actions)
        else:
            self._pending = (t, t + delay, actions)

    def expected_delay(self) -> int:
        """Steps the next chunk is expected to take: declared latency, else the last call's."""
        if self.latency is None:
            return 0
        ms = float(self.latency) if self.latency != MEASURED else (
            self.chunk_stats[-1].ms if self.chunk_stats else 0.0)
        return latency_steps(ms, self.control_dt)

    def _with_committed(self, obs: dict[str, Any], t: int) -> tuple[dict[str, Any], int]:
        """``obs`` plus ``prev_actions`` and ``frozen_steps`` (RTC); returns it and ``d``."""
        start, actions = self._chunks[-1]
        horizon = len(actions)
        frozen = min(self.expected_delay(), horizon - 1)
        rows = min(horizon, max(horizon - (t - start), frozen))
        idx = np.minimum(np.arange(t - start, t - start + rows), horizon - 1)
        return {**obs, "prev_actions": actions[idx].copy(), "frozen_steps": frozen}, frozen

    def _activate(self, start: int, actions: np.ndarray) -> None:
        """Make a chunk available (the only one, unless ensembling keeps older ones)."""
        self.switch_steps.append(self._t)  # act() takes the step's action from it next
        self._pending = None
        if self.ensemble_decay is None:
            self._chunks = [(start, actions)]
        else:
            self._chunks.append((start, actions))

    def _action_at(self, t: int) -> np.ndarray:
        """The executed action at step ``t`` from the chunks available now."""
        latest_start, latest = self._chunks[-1]
        if self.ensemble_decay is None:
            return latest[min(t - latest_start, len(latest) - 1)].copy()
        self._chunks = [(s, a) for s, a in self._chunks if t - s < len(a)] or [self._chunks[-1]]
        covering = [a[t - s] for s, a in self._chunks if t - s < len(a)]
        if not covering:  # every chunk ran out: hold the latest chunk's last action
            return latest[-1].copy()
        weights = np.exp(-self.ensemble_decay * np.arange(len(covering)))
        return (np.tensordot(weights / weights.sum(), np.stack(covering), axes=1)
                .astype(np.float32))


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
