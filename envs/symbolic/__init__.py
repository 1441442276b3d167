"""Symbolic planning domains (DroneNav, BlocksWorld): states, actions, task generators.

Usage: ``from envs.symbolic import generate_tasks; task = generate_tasks("drone_nav", 1)[0]``

A domain holds states, labels (atoms true in a state), step strings with preconditions and
effects, plan execution and its LTL alphabet (``letters()``); ``generate_tasks`` draws seeded
tasks (instruction, ground-truth LTLf text, initial state) with held-out templates and layouts.
"""

from envs.symbolic.base import (
    Execution,
    InvalidStateError,
    InvalidStepError,
    SymbolicDomain,
    Task,
)
from envs.symbolic.blocks_world import BlocksState, BlocksWorld
from envs.symbolic.drone_nav import LAYOUTS, DroneNav, Layout
from envs.symbolic.tasks import DOMAINS, generate_tasks, make_domain

__all__ = [
    "DOMAINS",
    "LAYOUTS",
    "BlocksState",
    "BlocksWorld",
    "DroneNav",
    "Execution",
    "InvalidStateError",
    "InvalidStepError",
    "Layout",
    "SymbolicDomain",
    "Task",
    "generate_tasks",
    "make_domain",
]
