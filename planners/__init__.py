"""LTLf engine, LTL-constrained and grounded plan decoding, and the Planner API.

Usage: ``from planners import Planner; Planner.from_default("drone_nav").plan("go to the lab",
ltl="F(lab)")``

Importing this package is light: torch and transformers load when a planner is built.
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
    "Plan",
    "PlanCheck",
    "Planner",
    "ProductGraph",
    "UnknownAtomError",
    "UnsatisfiableSpecError",
    "check_plan",
    "shortest_plan",
]
