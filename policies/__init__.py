"""Policies: the openpi contract, the chunk broker, rollouts and the policy server.

A policy is ``infer(obs) -> {"actions": ndarray (H, D), ...}`` plus ``reset()``;
:class:`ChunkBroker` executes the first ``k`` actions of each chunk, :func:`rollout` runs one
episode and returns an :class:`EpisodeRecord`.
"""

from policies.base import ExpertPolicy, Policy, PolicyOutputError, RandomPolicy
from policies.broker import ChunkBroker, ChunkStats
from policies.rollout import EpisodeRecord, rollout

__all__ = [
    "ChunkBroker", "ChunkStats", "DecoderSpec", "EpisodeRecord", "ExpertPolicy", "Policy",
    "PolicyOutputError", "RandomPolicy", "VLAPolicy", "parse_decoder_spec", "rollout",
]


def __getattr__(name: str):
    """Load :class:`VLAPolicy` and the decoder specs (they import torch) on first access."""
    if name == "VLAPolicy":
        from policies.vla_policy import VLAPolicy

        return VLAPolicy
    if name in ("DecoderSpec", "parse_decoder_spec"):
        import vla.decoders

        return getattr(vla.decoders, name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")
