"""Action heads: one file per head, registered here by name.

Usage: ``head = make_head(config)`` (``config.head`` names it); ``HEADS`` lists the names.

A new head is one file (a subclass of :class:`~vla.heads.base.ActionHead` declaring its
parameters, loss, decoders and :class:`~vla.heads.base.DecoderFamily` specs), one
``register_head`` line below and a test; :mod:`vla.decoders` learns its decoder specs from it.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from vla.heads.ar import ARHead
from vla.heads.base import ActionHead, ActionPrefix, DecoderFamily
from vla.heads.diffusion import DiffusionHead
from vla.heads.flow import FlowHead
from vla.heads.oft import OFTHead

if TYPE_CHECKING:
    from vla.config import VLAConfig

__all__ = ["HEADS", "ActionHead", "ActionPrefix", "DecoderFamily", "head_class", "make_head",
           "register_head"]

HEADS: dict[str, type[ActionHead]] = {}
"""Registered heads by name, in registration order (the order of tables and plots)."""


def register_head(cls: type[ActionHead]) -> type[ActionHead]:
    """Add a head class under ``cls.name``; its decoder family names must be new.

    Raises:
        ValueError: If the name or one of its decoder family names is taken.
    """
    if cls.name in HEADS:
        raise ValueError(f"a head named {cls.name!r} is already registered")
    taken = {f.name for h in HEADS.values() for f in h.families}
    clash = sorted(taken & {f.name for f in cls.families})
    if clash:
        raise ValueError(f"head {cls.name!r}: decoder families {clash} are already registered")
    HEADS[cls.name] = cls
    return cls


def head_class(name: str) -> type[ActionHead]:
    """The registered head class called ``name``.

    Raises:
        ValueError: If no head has that name (the message lists the known ones).
    """
    if name not in HEADS:
        close = difflib.get_close_matches(str(name), HEADS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown head {name!r}{hint}; known heads: {', '.join(HEADS)}")
    return HEADS[name]


def make_head(config: VLAConfig) -> ActionHead:
    """A freshly initialized head of the kind ``config.head`` names."""
    return head_class(config.head)(config)


for _cls in (ARHead, DiffusionHead, FlowHead, OFTHead):
    register_head(_cls)
