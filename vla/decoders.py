"""Decoder specs: the one place that parses the short strings naming a decoder.

Usage: ``spec = parse_decoder_spec("flow@10:heun")``; ``spec.head`` -> ``"flow"``;
``model.predict_chunk(obs, **spec.predict_kwargs())``; ``str(spec)`` is the canonical label.

A spec is ``family[+ee][@N][:solver]``. The families come from the registered heads
(:data:`vla.heads.HEADS`; each head declares its :class:`~vla.heads.base.DecoderFamily` list),
so a new decoder is a family on its head plus that head's decode routine:

========================  =========================================================
``ar``                    AR head, greedy autoregressive decoding
``jacobi``                AR head, greedy Jacobi iterated to its fixed point
``jacobi+ee``             AR head, Jacobi with relaxed early exit
``cjacobi`` / ``cjacobi+ee``  consistency-distilled AR head, Jacobi (+ early exit)
``diffusion@T``           masked-diffusion head, T denoising steps
``flow@K[:euler|:heun]``  flow-matching head, K integration steps (Euler by default)
``oft``                   one-pass parallel regression head
========================  =========================================================

Every other module takes a :class:`DecoderSpec` (or a string it parses here), and the decoder
sets the project runs (the comparison, the quick smoke run, the benchmark) are named here too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from vla.heads import HEADS
from vla.heads.base import DecoderFamily

_PATTERN = re.compile(
    r"^(?P<family>[a-z]+)(?P<ee>\+ee)?(?:@(?P<steps>[^:]*))?(?::(?P<solver>[a-z]*))?$")
SPEC_GRAMMAR = re.compile(r"^[a-z]+(\+ee)?(@\d+)?(:[a-z]+)?$")
"""What a spec string looks like (the test that no other module spells specs uses it)."""


def families() -> dict[str, tuple[str, DecoderFamily]]:
    """Every registered decoder family: ``name -> (head name, family)``."""
    return {f.name: (head, f) for head, cls in HEADS.items() for f in cls.families}


def valid_forms() -> tuple[str, ...]:
    """The spec forms of every family (``ar``, ``jacobi+ee``, ``flow@K:heun``, ...)."""
    forms = []
    for _, fam in families().values():
        base = fam.name + (f"@{fam.steps_symbol}" if fam.steps is not None else "")
        forms.append(base)
        if fam.early_exit:
            forms.append(fam.name + "+ee")
        forms += [f"{base}:{s}" for s in fam.solvers]
    return tuple(forms)


@dataclass(frozen=True)
class DecoderSpec:
    """A parsed decoder spec.

    Attributes:
        family: A registered family name (``ar``, ``jacobi``, ``cjacobi``, ``diffusion``,
            ``flow``, ``oft``, ...).
        early_exit: Jacobi with the relaxed early-exit rule (``+ee``); families that allow it.
        steps: Denoising / integration steps of stepped families (required: ``diffusion@8``);
            ``None`` otherwise.
        solver: The ODE solver of families that have solvers (their default when the spec gives
            none); ``None`` otherwise.
    """

    family: str
    early_exit: bool = False
    steps: int | None = None
    solver: str | None = None

    def __post_init__(self) -> None:
        known = families()
        if self.family not in known:
            raise ValueError(f"family must be one of {sorted(known)}, got {self.family!r}")
        fam = known[self.family][1]
        if self.early_exit and not fam.early_exit:
            raise ValueError(f"early_exit (+ee) does not apply to {self.family}")
        if fam.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
                raise ValueError(f"steps must be a positive int for {self.family} "
                                 f"({self.family}@{fam.steps_symbol}), got {self.steps!r}")
        elif self.steps is not None:
            raise ValueError(f"steps (@N) does not apply to {self.family}")
        if fam.solvers:
            if self.solver is None:
                object.__setattr__(self, "solver", fam.solvers[0])
            elif self.solver not in fam.solvers:
                raise ValueError(f"solver must be one of {list(fam.solvers)}, "
                                 f"got {self.solver!r}")
        elif self.solver is not None:
            raise ValueError(f"a solver (:name) does not apply to {self.family}")

    @property
    def _family(self) -> DecoderFamily:
        return families()[self.family][1]

    @property
    def head(self) -> str:
        """The head this decoder drives (``ar``, ``diffusion``, ``flow``, ``oft``)."""
        return families()[self.family][0]

    @property
    def checkpoint(self) -> str:
        """Folder of the model inside a checkpoint set (``cjacobi+ee`` -> ``cjacobi``)."""
        return self._family.checkpoint or self.head

    @property
    def distilled(self) -> bool:
        """Whether the model is a distilled student of its head (its own set folder)."""
        return self.checkpoint != self.head

    @property
    def stochastic(self) -> bool:
        """Whether decoding draws noise (policies re-seed a generator per episode)."""
        return self._family.stochastic

    @property
    def plot_family(self) -> str:
        """Group of the decoder in plots and tables (``AR``, ``diffusion``, ``flow``, ...)."""
        return self._family.plot_family or self.head

    def predict_kwargs(self) -> dict[str, Any]:
        """Arguments of ``VLAModel.predict_chunk`` that run this decoder.

        ``+ee`` asks for ``early_exit="auto"``: the relaxed-convergence setting chosen on
        held-out data and stored in the checkpoint (by ``robodecode distill``), else the
        ``EarlyExit()`` defaults.
        """
        kwargs: dict[str, Any] = {"decoder": self._family.decoder}
        if self.early_exit:
            kwargs["early_exit"] = "auto"
        if self.steps is not None:
            kwargs["steps"] = self.steps
        if self.solver is not None:
            kwargs["solver"] = self.solver
        return kwargs

    def __str__(self) -> str:
        fam = self._family
        text = self.family + ("+ee" if self.early_exit else "")
        if self.steps is not None:
            text += f"@{self.steps}"
        if self.solver is not None and self.solver != fam.solvers[0]:
            text += f":{self.solver}"
        return text

    @property
    def label(self) -> str:
        """The canonical spec string (what tables, plots and results files show)."""
        return str(self)


def parse_decoder_spec(text: str | DecoderSpec) -> DecoderSpec:
    """Parse a spec such as ``ar``, ``cjacobi+ee``, ``diffusion@8`` or ``flow@10:heun``.

    Args:
        text: The spec (surrounding whitespace and case are ignored); a :class:`DecoderSpec`
            is returned as it is.

    Returns:
        The parsed spec; ``str(spec)`` gives the canonical form.

    Raises:
        ValueError: If ``text`` is not a valid spec; the message lists the valid forms and
            suggests the closest one.
    """
    if isinstance(text, DecoderSpec):
        return text
    forms = ", ".join(valid_forms())
    if not isinstance(text, str):
        raise ValueError(f"decoder spec must be a string, got {type(text).__name__}")
    clean = text.strip().lower()
    match = _PATTERN.match(clean)
    family = match["family"] if match else ""
    if family not in families():
        close = difflib.get_close_matches(clean.split("@")[0].split(":")[0], valid_forms(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown decoder spec {text!r}{hint}; valid forms: {forms}")
    steps = match["steps"]
    if steps is not None and not (steps.isascii() and steps.isdigit()):
        raise ValueError(f"decoder spec {text!r}: steps after '@' must be a positive integer; "
                         f"valid forms: {forms}")
    try:
        return DecoderSpec(family=family, early_exit=match["ee"] is not None,
                           steps=int(steps) if steps is not None else None,
                           solver=match["solver"])
    except ValueError as err:
        raise ValueError(f"decoder spec {text!r}: {err}; valid forms: {forms}") from None


def parse_many(texts: list[str] | tuple[str, ...]) -> tuple[DecoderSpec, ...]:
    """Parse several specs, refusing duplicates (two spellings of one decoder included)."""
    specs = tuple(parse_decoder_spec(t) for t in texts)
    labels = [str(s) for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"decoders listed twice: {dup}")
    return specs


def help_text() -> str:
    """One line for CLI help: every spec form."""
    return "Decoder spec: " + ", ".join(valid_forms()) + "."


COMPARISON_DECODERS: tuple[DecoderSpec, ...] = parse_many((
    "ar", "jacobi", "jacobi+ee", "cjacobi+ee", "diffusion@2", "diffusion@4", "diffusion@8",
    "flow@2", "flow@5", "flow@10", "oft"))
"""The decoders of the main comparison (``robodecode compare``), in table order."""

QUICK_DECODERS: tuple[DecoderSpec, ...] = parse_many(("ar", "cjacobi+ee", "oft"))
"""The decoders of ``robodecode compare --quick`` (a smoke run)."""

BENCH_DECODERS: tuple[DecoderSpec, ...] = parse_many((
    "ar", "jacobi", "jacobi+ee", "cjacobi", "cjacobi+ee", "diffusion@4", "diffusion@8",
    "diffusion@12", "flow@5", "flow@10", "flow@5:heun", "oft"))
"""The decoders ``robodecode bench vla`` times, grouped by checkpoint folder."""

SERVED_DECODER: DecoderSpec = parse_decoder_spec("cjacobi+ee")
"""The decoder ``robodecode bench server`` serves by default (the comparison's fastest AR-family
decoder)."""
