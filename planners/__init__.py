"""LTLf engine, LTL-constrained and grounded plan decoding, and the Planner API.

Usage: ``from planners import Planner; Planner.from_default("drone_nav").plan("go to the lab",
ltl="F(lab)")``

Importing this package is light: torch and transformers load when a planner is built or
``LTLLogitsProcessor`` (from ``planners.constrained``) is first accessed.
"""

from planners.check import (
    PlanCheck,
    ProductGraph,
    UnknownAtomError,
    UnsatisfiableSpecError,
    check_plan,
    shortest_plan,
)
from planners.planner import Plan, Planner

__all__ = [
    "LTLLogitsProcessor",
    "Plan",
    "PlanCheck",
    "Planner",
    "ProductGraph",
    "UnknownAtomError",
    "UnsatisfiableSpecError",
    "check_plan",
    "shortest_plan",
]


def __getattr__(name: str):
    """Load ``LTLLogitsProcessor`` (which imports torch and transformers) on first access."""
    if name == "LTLLogitsProcessor":
        from planners.constrained import LTLLogitsProcessor

        return LTLLogitsProcessor
    raise AttributeError(f"module 'planners' has no attribute {name!r}")
