"""Run one episode of a policy in a gymnasium env and record what happened.

Usage: ``record = rollout(env, ExpertPolicy(env), seed=0)``, then ``record.to_dict()``
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies.base import Policy, PolicyOutputError
from policies.broker import ChunkBroker, ChunkStats


@dataclass
class EpisodeRecord:
    """The outcome of one episode.

    Attributes:
        seed: The seed passed to ``env.reset``.
        success: Whether ``info["is_success"]`` was true at some step.
        steps: Env steps taken.
        sum_reward: Return (sum of rewards).
        max_reward: Largest single-step reward (``None`` when no step was taken).
        failure: Why the episode failed (``None`` on success): a policy-output error, the time
            limit, or termination without success.
        k: Actions executed per chunk (effective value; ``None`` if no chunk was produced).
        latency: The latency mode (``None``, ``"measured"`` or fixed ms).
        rtc: Whether real-time chunking was on (``to_dict`` then adds ``rtc`` and
            ``chunk_frozen_steps``).
        instruction: The episode's language instruction, if the observation has one.
        chunks: One :class:`~policies.broker.ChunkStats` per ``infer`` call.
        smoothness: How the executed actions move (:func:`smoothness`): the mean action jump
            at chunk switches and elsewhere, and the mean second difference (jerk).
        frames: RGB frames when recorded with ``video=True`` (not serialised).
    """

    seed: int
    success: bool
    steps: int
    sum_reward: float
    max_reward: float | None
    failure: str | None
    k: int | None
    latency: str | float | None
    instruction: str | None = None
    chunks: list[ChunkStats] = field(default_factory=list)
    smoothness: dict[str, float | None] = field(default_factory=dict)
    frames: list[np.ndarray] | None = field(default=None, repr=False)
    rtc: bool = False

    @property
    def nfe_per_chunk(self) -> float | None:
        """Mean decoder passes per chunk, ``None`` when the policy reports none."""
        values = [c.nfe for c in self.chunks if c.nfe is not None]
        return float(np.mean(values)) if values else None

    @property
    def ms_per_chunk(self) -> float | None:
        """Median wall time of ``infer`` over this episode's chunks."""
        return statistics.median(c.ms for c in self.chunks) if self.chunks else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; per-chunk stats become parallel lists."""
        return {
            "seed": self.seed, "success": self.success, "steps": self.steps,
            "sum_reward": self.sum_reward, "max_reward": self.max_reward,
            "failure": self.failure, "k": self.k, "latency": self.latency,
            "instruction": self.instruction,
            "n_chunks": len(self.chunks), "nfe_per_chunk": self.nfe_per_chunk,
            "ms_per_chunk": self.ms_per_chunk,
            "chunk_ms": [round(c.ms, 4) for c in self.chunks],
            "chunk_decode_ms": [None if c.decode_ms is None else round(c.decode_ms, 4)
                                for c in self.chunks],
            "chunk_nfe": [c.nfe for c in self.chunks],
            "chunk_prefix_nfe": [c.prefix_nfe for c in self.chunks],
            "chunk_delay_steps": [c.delay_steps for c in self.chunks],
            "chunk_horizon": [c.horizon for c in self.chunks],
            **self.smoothness,
            **({"rtc": True, "chunk_frozen_steps": [c.frozen_steps for c in self.chunks]}
               if self.rtc else {}),
        }


def control_dt(env: Any) -> float:
    """Seconds per env step: ``env.unwrapped.control_dt``, else MuJoCo's ``dt``.

    Raises:
        ValueError: If the env exposes neither.
    """
    base = getattr(env, "unwrapped", env)
    for name in ("control_dt", "dt"):
        value = getattr(base, name, None)
        if value is not None:
            return float(value)
    raise ValueError(f"{type(base).__name__} exposes neither control_dt nor dt; latency-aware "
                     "evaluation needs the control period")


def rollout(env: Any, policy: Policy, seed: int, *, k: int | None = None,
            ensemble_decay: float | None = None, latency: str | float | None = None,
            max_steps: int | None = None, video: bool = False,
            stop_on_success: bool = True, rtc: bool = False) -> EpisodeRecord:
    """Run one episode through a :class:`~policies.broker.ChunkBroker`.

    Actions are clipped to the action space (as a robot driver clips commands). A policy that
    returns a non-finite or wrongly shaped chunk ends the episode as a failure with the reason;
    other exceptions propagate.

    Args:
        env: A gymnasium env following the observation contract and reporting
            ``info["is_success"]``.
        policy: The policy to run.
        seed: Seed for ``env.reset`` and ``policy.reset``.
        k: Actions executed per chunk; ``None`` executes whole chunks.
        ensemble_decay: ACT temporal-ensembling rate; ``None`` disables it.
        latency: ``None``, ``"measured"`` or fixed milliseconds (see :mod:`policies.broker`).
        max_steps: Step cap; defaults to the env's ``max_episode_steps``.
        video: Record RGB frames (``env.render()`` in ``rgb_array`` mode, else ``obs["image"]``).
        stop_on_success: End the episode at the first success (success is "ever succeeded"
            either way, as in LeRobot's evaluation).
        rtc: Real-time chunking: each chunk after the first gets the committed actions of
            the previous one (see :mod:`policies.broker`); meant for ``latency`` set.

    Returns:
        The :class:`EpisodeRecord`.

    Raises:
        ValueError: If no step cap is known, or ``k`` exceeds the chunk length.
    """
    spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    limit = max_steps if max_steps is not None else spec_limit
    if limit is None or limit < 1:
        raise ValueError(f"max_steps must be a positive int when the env has no time limit, "
                         f"got {max_steps!r}")
    space = env.action_space
    broker = ChunkBroker(policy, k, ensemble_decay=ensemble_decay, latency=latency,
                         control_dt=control_dt(env) if latency is not None else None,
                         action_dim=space.shape[0], rtc=rtc)
    obs, _ = env.reset(seed=seed)
    instruction = obs.get("instruction") if isinstance(obs, dict) else None
    broker.reset(seed=seed)
    frames = [_frame(env, obs)] if video else None
    success, failure, steps = False, None, 0
    rewards: list[float] = []
    executed: list[np.ndarray] = []
    while steps < limit:
        try:
            action = broker.act(obs)
        except PolicyOutputError as err:
            failure = f"policy output at step {steps}: {err}"
            break
        action = np.clip(action, space.low, space.high).astype(space.dtype)
        executed.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        rewards.append(float(reward))
        success = success or bool(info.get("is_success", False))
        if frames is not None:
            frames.append(_frame(env, obs))
        if (success and stop_on_success) or terminated or truncated:
            if not success:
                failure = (f"terminated without success at step {steps}" if terminated
                           else f"time limit ({steps} steps) without success")
            break
    if not success and failure is None:
        failure = f"time limit ({steps} steps) without success"
    return EpisodeRecord(
        seed=seed, success=success, steps=steps, sum_reward=float(sum(rewards)),
        max_reward=max(rewards) if rewards else None, failure=None if success else failure,
        k=broker.k, latency=latency, instruction=instruction,
        chunks=list(broker.chunk_stats), frames=frames, rtc=rtc,
        smoothness=smoothness(executed, broker.switch_steps))


def smoothness(actions: list[np.ndarray], switch_steps: list[int]) -> dict[str, float | None]:
    """Action smoothness of an episode, at chunk switches and elsewhere.

    ``switch_jump``: mean L2 norm of ``a_t - a_{t-1}`` over the steps ``t >= 1`` whose action is
    the first from a newly arrived chunk (the join real-time chunking should smooth);
    ``step_jump``: the same over every other step (the motion within a chunk); ``jerk``: mean
    L2 norm of the second difference ``a_t - 2 a_{t-1} + a_{t-2}`` over the episode. ``None``
    where an episode has no such step. Actions are the executed (clipped) ones.
    """
    if not actions:
        return {"switch_jump": None, "step_jump": None, "jerk": None}
    a = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    switches = {t for t in switch_steps if 1 <= t < len(a)}
    jumps = np.linalg.norm(np.diff(a, axis=0), axis=1) if len(a) > 1 else np.zeros(0)
    at_switch = [jumps[t - 1] for t in sorted(switches)]
    elsewhere = [j for t, j in enumerate(jumps, start=1) if t not in switches]
    jerk = np.linalg.norm(np.diff(a, n=2, axis=0), axis=1) if len(a) > 2 else np.zeros(0)

    def mean(xs: Any) -> float | None:
        return float(np.mean(xs)) if len(xs) else None

    return {"switch_jump": mean(at_switch), "step_jump": mean(elsewhere), "jerk": mean(jerk)}


def _frame(env: Any, obs: dict[str, Any]) -> np.ndarray:
    if getattr(env, "render_mode", None) == "rgb_array":
        return np.asarray(env.render())
    return np.asarray(obs["image"])
