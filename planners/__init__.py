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
from planners.planner import Plan, Planner, PromptTooLongError

__all__ = [
    "ConstraintConflictError",
    "LTLLogitsProcessor",
    "Plan",
    "PlanCheck",
    "Planner",
    "ProductGraph",
    "PromptTooLongError",
    "UnknownAtomError",
    "UnsatisfiableSpecError",
    "check_plan",
    "shortest_plan",
]


def __getattr__(name: str):
    """Load the names of ``planners.constrained`` (torch, transformers) on first access."""
    if name in ("LTLLogitsProcessor", "ConstraintConflictError"):
        from planners import constrained

        return getattr(constrained, name)
    raise AttributeError(f"module 'planners' has no attribute {name!r}")
