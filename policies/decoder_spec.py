"""Decoder specs: the short strings that name a head and the decoder that drives it.

Usage: ``parse_decoder_spec("flow@10:heun")`` -> ``DecoderSpec(family="flow", steps=10, ...)``

Valid forms (one place, so the CLI, the evaluator and the comparison agree):

========================  =========================================================
``ar``                    AR head, greedy autoregressive decoding
``jacobi``                AR head, greedy Jacobi iterated to its fixed point
``jacobi+ee``             AR head, Jacobi with relaxed early exit
``cjacobi`` / ``cjacobi+ee``  consistency-distilled AR head, Jacobi (+ early exit)
``diffusion@T``           masked-diffusion head, T denoising steps
``flow@K[:euler|:heun]``  flow-matching head, K integration steps (Euler by default)
``oft``                   one-pass parallel regression head
========================  =========================================================
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

#: Decoder families and the head each one drives.
HEADS: dict[str, str] = {
    "ar": "ar",
    "jacobi": "ar",
    "cjacobi": "ar",
    "diffusion": "diffusion",
    "flow": "flow",
    "oft": "oft",
}
SOLVERS: tuple[str, ...] = ("euler", "heun")
VALID_FORMS: tuple[str, ...] = (
    "ar", "jacobi", "jacobi+ee", "cjacobi", "cjacobi+ee", "diffusion@T", "flow@K",
    "flow@K:euler", "flow@K:heun", "oft",
)
_EARLY_EXIT = frozenset({"jacobi", "cjacobi"})
_STEPPED = frozenset({"diffusion", "flow"})
_PATTERN = re.compile(
    r"^(?P<family>[a-z]+)(?P<ee>\+ee)?(?:@(?P<steps>[^:]*))?(?::(?P<solver>[a-z]*))?$"
)


@dataclass(frozen=True)
class DecoderSpec:
    """A parsed decoder spec.

    Attributes:
        family: One of ``ar``, ``jacobi``, ``cjacobi``, ``diffusion``, ``flow``, ``oft``.
        early_exit: Jacobi with the relaxed early-exit rule (``+ee``); Jacobi families only.
        steps: Denoising (``diffusion``) or integration (``flow``) steps; ``None`` otherwise.
        solver: ``euler`` or ``heun`` for ``flow`` (a Heun step costs 2 passes); ``None``
            otherwise.
    """

    family: str
    early_exit: bool = False
    steps: int | None = None
    solver: str | None = None

    def __post_init__(self) -> None:
        if self.family not in HEADS:
            raise ValueError(f"family must be one of {sorted(HEADS)}, got {self.family!r}")
        if self.early_exit and self.family not in _EARLY_EXIT:
            raise ValueError(f"early_exit (+ee) applies to jacobi/cjacobi only, not {self.family}")
        if self.family in _STEPPED:
            if not isinstance(self.steps, int) or self.steps < 1:
                raise ValueError(f"steps must be a positive int for {self.family}, "
                                 f"got {self.steps!r}")
        elif self.steps is not None:
            raise ValueError(f"steps (@N) applies to diffusion/flow only, not {self.family}")
        if self.family == "flow":
            if self.solver is None:
                object.__setattr__(self, "solver", "euler")
            elif self.solver not in SOLVERS:
                raise ValueError(f"solver must be one of {list(SOLVERS)}, got {self.solver!r}")
        elif self.solver is not None:
            raise ValueError(f"solver applies to flow only, not {self.family}")

    @property
    def head(self) -> str:
        """The VLA head this decoder drives: ``ar``, ``diffusion``, ``flow`` or ``oft``."""
        return HEADS[self.family]

    @property
    def distilled(self) -> bool:
        """Whether the consistency-distilled AR head is needed (``cjacobi``)."""
        return self.family == "cjacobi"

    def __str__(self) -> str:
        text = self.family + ("+ee" if self.early_exit else "")
        if self.steps is not None:
            text += f"@{self.steps}"
        if self.family == "flow" and self.solver != "euler":
            text += f":{self.solver}"
        return text


def parse_decoder_spec(text: str) -> DecoderSpec:
    """Parse a decoder spec such as ``ar``, ``cjacobi+ee``, ``diffusion@8`` or ``flow@10:heun``.

    Args:
        text: The spec; surrounding whitespace and case are ignored.

    Returns:
        The parsed :class:`DecoderSpec`; ``str(spec)`` gives the canonical form.

    Raises:
        ValueError: If ``text`` is not a valid spec; the message lists the valid forms.
    """
    if not isinstance(text, str):
        raise ValueError(f"decoder spec must be a string, got {type(text).__name__}")
    clean = text.strip().lower()
    match = _PATTERN.match(clean)
    family = match["family"] if match else ""
    if family not in HEADS:
        close = difflib.get_close_matches(clean.split("@")[0].split(":")[0], VALID_FORMS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown decoder spec {text!r}{hint}; valid forms: "
                         f"{', '.join(VALID_FORMS)}")
    steps = match["steps"]
    if steps is not None and not (steps.isascii() and steps.isdigit()):
        raise ValueError(f"decoder spec {text!r}: steps after '@' must be a positive integer; "
                         f"valid forms: {', '.join(VALID_FORMS)}")
    try:
        return DecoderSpec(family=family, early_exit=match["ee"] is not None,
                           steps=int(steps) if steps is not None else None,
                           solver=match["solver"])
    except ValueError as err:
        raise ValueError(f"decoder spec {text!r}: {err}; valid forms: "
                         f"{', '.join(VALID_FORMS)}") from None
