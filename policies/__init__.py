"""Policies: the openpi contract, the chunk broker, rollouts and the policy server.

A policy is ``infer(obs) -> {"actions": ndarray (H, D), ...}`` plus ``reset()``.
"""
