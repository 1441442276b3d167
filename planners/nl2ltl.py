"""NL -> LTLf translation with equivalence voting (SELP), over lifted instructions.

Usage::

    from envs.symbolic import DroneNav
    from planners.nl2ltl import Translator
    tr = Translator.load("planners/default_lm/nl2ltl")
    vote = tr.translate("visit the lab, then the kitchen; never the cafe", DroneNav("office"))
    vote.formula, vote.votes      # 'F(x...)' with atoms of the domain, [(formula, count), ...]

The domain's entities (rooms; blocks and table locations) are *lifted* out of the instruction
first: each mentioned entity becomes a placeholder ``x1, x2, ...`` in order of appearance, the
LM writes a formula over placeholders, and the placeholders are mapped back (so new layouts
work, as in Lang2LTL). :meth:`Translator.translate` samples ``k`` formulas, drops the
unparsable ones and those with unknown atoms, groups the rest by DFA equivalence over the
domain's letters and returns the largest group's first formula (ties: the earliest group).
With ``constrained=True`` (the default) decoding runs under
:class:`~planners.formula_constrained.FormulaLogitsProcessor`: every sample is a complete,
parsable formula over the (lifted) domain atoms, so no vote is lost to malformed text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envs.symbolic import SymbolicDomain
from envs.symbolic.base import words

PROMPT = "task: {}\nltl:"
_PLACEHOLDER = re.compile(r"x([0-9]+)\Z")
_JOIN = r"[\s_-]+"  # what may join the words of an entity name in an instruction


def entities(domain: SymbolicDomain) -> dict[str, str]:
    """``{phrase: name}`` of the things instructions mention (rooms; blocks and locations)."""
    names = getattr(domain, "adjacency", None)
    if names is None:
        names = (*getattr(domain, "blocks", ()), *getattr(domain, "locations", ()))
    return {words(n): n for n in names}


def lift(instruction: str, domain: SymbolicDomain) -> tuple[str, dict[str, str]]:
    """The lowercased instruction with entities replaced by ``x1..`` and the placeholder map.

    An entity's words may be joined by spaces, underscores or hyphens (``server room``,
    ``server_room``, ``server-room``).
    """
    ents = entities(domain)
    text = instruction.lower().strip()
    alternatives = (re.escape(p).replace(r"\ ", _JOIN) for p in sorted(ents, key=len,
                                                                        reverse=True))
    pattern = re.compile(r"\b(" + "|".join(alternatives) + r")\b")
    mapping: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        name = ents[re.sub(_JOIN, " ", m.group(1))]
        if name not in mapping:
            mapping[name] = f"x{len(mapping) + 1}"
        return mapping[name]

    text = pattern.sub(sub, text)
    return text, {v: k for k, v in mapping.items()}


def _map_atom(atom: str, mapping: dict[str, str]) -> str:
    """Map an atom's underscore-separated parts (whole atom first) through ``mapping``."""
    if atom in mapping:
        return mapping[atom]
    return "_".join(mapping.get(p, p) for p in atom.split("_"))


def lift_formula(ltl: str, placeholders: dict[str, str]) -> str:
    """Replace entity names in ``ltl``'s atoms by their placeholders (``placeholders``: x->name)."""
    back = {name: x for x, name in placeholders.items()}
    return re.sub(r"[a-z_][a-z0-9_]*", lambda m: m.group(0) if m.group(0) in (
        "true", "false") else _map_atom(m.group(0), back), ltl)


def unlift_formula(text: str, placeholders: dict[str, str]) -> str:
    """Replace placeholders in a generated formula by entity names."""
    return re.sub(r"[a-z_][a-z0-9_]*", lambda m: _map_atom(m.group(0), placeholders), text)


@dataclass
class Vote:
    """A voted translation.

    Attributes:
        formula: The winning formula text over the domain's atoms, or None if no sample parsed.
        votes: ``[(formula, count), ...]`` per equivalence group, largest first.
        samples: Every sampled text after unlifting.
        dropped: How many samples were unparsable or used unknown atoms.
        seconds: Wall time of sampling and voting.
    """

    formula: str | None
    votes: list[tuple[str, int]] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    dropped: int = 0
    seconds: float = 0.0

    def matches(self, truth: str, domain: SymbolicDomain) -> bool:
        """Whether the winner is equivalent to ``truth`` over ``domain``'s letters."""
        return self.formula is not None and same(self.formula, truth, domain)


def same(a: str, b: str, domain: SymbolicDomain) -> bool:
    """DFA equivalence of two formula texts over the domain's letters (projected)."""
    from planners.ltl import LTLf, equivalent

    fa, fb = LTLf(a), LTLf(b)
    atoms = fa.atoms | fb.atoms
    letters = {frozenset(letter & atoms) for letter in domain.letters()}
    return equivalent(fa, fb, alphabet=sorted(letters, key=sorted))


def vote(candidates: Sequence[str], domain: SymbolicDomain) -> Vote:
    """Group parsable, known-atom formulas by equivalence; the largest group wins (ties: first)."""
    from planners.ltl import LTLf, LTLSyntaxError

    groups: list[list[str]] = []
    dropped = 0
    for text in candidates:
        try:
            spec = LTLf(text)
        except LTLSyntaxError:
            dropped += 1
            continue
        if not spec.atoms <= domain.atoms:
            dropped += 1
            continue
        for g in groups:
            if same(g[0], text, domain):
                g.append(text)
                break
        else:
            groups.append([text])
    order = sorted(range(len(groups)), key=lambda i: (-len(groups[i]), i))
    votes = [(groups[i][0], len(groups[i])) for i in order]
    return Vote(votes[0][0] if votes else None, votes, list(candidates), dropped)


class Translator:
    r"""An HF causal LM that writes lifted LTLf after ``task: <lifted instruction>\nltl:``.

    Args:
        model: The causal LM.
        tokenizer: Its HF tokenizer (with an EOS token).
        k: Samples per vote (SELP: 10).
        temperature: Sampling temperature (SELP: 0.6).
        max_new_tokens: Formula length cap in tokens.
        constrained: Decode under the formula grammar and the domain's atom vocabulary
            (:mod:`planners.formula_constrained`), so every sample parses.
    """

    def __init__(self, model, tokenizer, k: int = 10, temperature: float = 0.6,
                 max_new_tokens: int = 48, constrained: bool = True) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.tokenizer = model, tokenizer
        self.k, self.temperature, self.max_new_tokens = k, temperature, max_new_tokens
        self.constrained = constrained
        self._surfaces = None
        self._constraints: dict[frozenset[str], object] = {}

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Translator:
        """Load a saved translator folder (safetensors GPT-2 + tokenizer)."""
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        path = Path(path)
        if not (path / "model.safetensors").exists():
            raise ValueError(f"no translator LM in {path} (expected model.safetensors)")
        return cls(AutoModelForCausalLM.from_pretrained(path).eval(),
                   PreTrainedTokenizerFast.from_pretrained(path), **kwargs)

    def _generate(self, instruction: str, domain: SymbolicDomain, sample: bool
                  ) -> list[str]:
        import torch

        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty str, got {instruction!r}")
        text, mapping = lift(instruction, domain)
        ids = torch.tensor([self.tokenizer.encode(PROMPT.format(text),
                                                  add_special_tokens=False)])
        eos = self.tokenizer.eos_token_id
        kw = {"do_sample": True, "temperature": self.temperature, "top_k": 0,
              "num_return_sequences": self.k} if sample else {"do_sample": False}
        if self.constrained:
            kw["logits_processor"] = [self.processor(domain, mapping, ids.shape[1])]
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=self.max_new_tokens, eos_token_id=eos,
                                      pad_token_id=eos, **kw)
        from planners.formula_constrained import continuation_text

        prompt = ids[0].tolist()
        texts = [continuation_text(self.tokenizer, prompt, row[len(prompt):])
                 for row in out.tolist()]
        return [unlift_formula(t.strip(), mapping) for t in texts]

    def processor(self, domain: SymbolicDomain, mapping: dict[str, str], prompt_length: int):
        """The grammar processor over ``domain``'s atoms lifted by ``mapping`` (x -> name)."""
        from planners.formula_constrained import (
            FormulaConstraint,
            FormulaLogitsProcessor,
            TokenSurfaces,
        )

        if self._surfaces is None:
            self._surfaces = TokenSurfaces.build(self.tokenizer)
        atoms = frozenset(lift_formula(a, mapping) for a in domain.atoms)
        constraint = self._constraints.get(atoms)
        if constraint is None:
            constraint = self._constraints[atoms] = FormulaConstraint(
                self._surfaces, atoms, self.tokenizer.eos_token_id)
        return FormulaLogitsProcessor(constraint, prompt_length, self.max_new_tokens)

    def greedy(self, instruction: str, domain: SymbolicDomain) -> str:
        """One greedy translation (the single-sample baseline)."""
        return self._generate(instruction, domain, sample=False)[0]

    def translate(self, instruction: str, domain: SymbolicDomain) -> Vote:
        """Sample ``k`` formulas and vote by equivalence (see the module docstring)."""
        t0 = time.perf_counter()
        result = vote(self._generate(instruction, domain, sample=True), domain)
        result.seconds = time.perf_counter() - t0
        return result
