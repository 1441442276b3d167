"""The Policy contract (openpi's ``infer(obs) -> {"actions": (H, D)}``), the chunk broker,
rollouts and the policy server.
"""
