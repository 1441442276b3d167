r"""The plan text format and the token trie of step strings as a tokenizer encodes them in context.

Usage: ``trie = StepTrie.build(tokenizer, domain.steps())``

A prompt is ``<domain state description>\ntask: <instruction>\nplan:`` and the plan follows it
as steps, each preceded by one space, ended by the tokenizer's EOS token::

    building: office. at: lobby.
    task: go to the cafe.
    plan: fly_to(reception) fly_to(cafe)<eos>

The space in front of every step puts a pre-tokenizer boundary there for byte-level BPE
(GPT-2's split regex attaches a space to the following word) and for Unigram/SentencePiece
(Metaspace splits before each space), so the tokens of a plan are the concatenation of the
tokens of its units ``" " + step``. :meth:`StepTrie.build` encodes each unit *in context*
(after ``plan:``) and checks that concatenation really holds for the given tokenizer. A
vocabulary whose tokens span those boundaries (``lab) fly_to(`` as one token, from a tokenizer
without a whitespace pre-tokenizer) has no such segmentation: each unit is then written with the
fewest tokens whose decoded text is exactly the unit, so plans still decode to their steps
(``StepTrie.in_context`` is False), though not in the tokenizer's own segmentation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PLAN_MARKER = "plan:"
_STEP_RE = re.compile(r"[^\s()]+\([^()]*\)|\S+")


def format_prompt(state_description: str, instruction: str) -> str:
    """The LM prompt for one task (ends with ``plan:``, no trailing space)."""
    return f"{state_description}\ntask: {instruction.strip()}\n{PLAN_MARKER}"


def format_plan(steps: Sequence[str]) -> str:
    """The plan text that follows the prompt (each step preceded by a space)."""
    return "".join(f" {s}" for s in steps)


def parse_plan(text: str) -> list[str]:
    """Split generated plan text into step strings (junk becomes its own, invalid, "step")."""
    return _STEP_RE.findall(text)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (HF tokenizer or ``tokenizers.Tokenizer``)."""
    if hasattr(tokenizer, "encode_batch"):  # a raw tokenizers.Tokenizer
        return tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer.encode(text, add_special_tokens=False)


@dataclass
class StepTrie:
    """A trie over the token sequences of the plan units ``" " + step``.

    Attributes:
        children: ``children[node]`` maps a token id to the child node (node 0 is the root).
        step_at: ``step_at[node]`` is the step a node completes, or None.
        steps_under: ``steps_under[node]`` is every step whose unit passes through ``node``.
        unit_tokens: Token ids of each step's unit, in context.
        in_context: Whether the units are the tokenizer's own encoding in a plan (False: the
            vocabulary has tokens spanning unit boundaries, see the module docstring).
    """

    children: list[dict[int, int]]
    step_at: list[str | None]
    steps_under: list[frozenset[str]]
    unit_tokens: dict[str, tuple[int, ...]]
    in_context: bool = True

    @classmethod
    def build(cls, tokenizer, steps: Sequence[str]) -> StepTrie:
        """Encode each unit after ``plan:`` and insert it; verify tokenization composes.

        Where the tokenizer merges tokens across the prompt/unit or unit/unit boundary, units
        are written with the fewest tokens that decode to them (:func:`surface_units`).

        Raises:
            ValueError: If ``steps`` is empty, or some unit cannot be written with tokens that
                decode to it.
        """
        if not steps:
            raise ValueError("steps must not be empty")
        units = _units_in_context(tokenizer, steps)
        in_context = units is not None
        if units is None:
            units = surface_units(tokenizer, steps)
        children: list[dict[int, int]] = [{}]
        step_at: list[str | None] = [None]
        under: list[set[str]] = [set()]
        for step, ids in units.items():
            node = 0
            under[0].add(step)
            for tok in ids:
                if step_at[node] is not None:
                    raise ValueError(f"the tokens of step {step_at[node]!r} prefix {step!r}")
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children[node][tok] = nxt
                    children.append({})
                    step_at.append(None)
                    under.append(set())
                node = nxt
                under[node].add(step)
            if children[node] or step_at[node] is not None:
                raise ValueError(f"the tokens of step {step!r} prefix another step's")
            step_at[node] = step
        return cls(children, step_at, [frozenset(u) for u in under], units, in_context)

    def match(self, tokens: Sequence[int]) -> tuple[list[str], int]:
        """The steps whose units ``tokens`` begin with, and where the unmatched rest starts.

        Returns:
            ``(steps, rest)``: the step strings of the whole units matched from the start, and
            the index of the first token not in a matched unit (``len(tokens)`` if all are).
        """
        steps: list[str] = []
        node, start = 0, 0
        for i, tok in enumerate(tokens):
            node = self.children[node].get(tok, -1)
            if node < 0:
                break
            if self.step_at[node] is not None:
                steps.append(self.step_at[node])
                node, start = 0, i + 1
        return steps, start

    @property
    def max_unit_length(self) -> int:
        """The most tokens any unit takes."""
        return max(len(u) for u in self.unit_tokens.values())


def _units_in_context(tokenizer, steps: Sequence[str]) -> dict[str, tuple[int, ...]] | None:
    """Each unit's tokens after ``plan:``, or None where tokens merge across a unit boundary."""
    context = encode(tokenizer, PLAN_MARKER)
    units: dict[str, tuple[int, ...]] = {}
    for step in steps:
        ids = encode(tokenizer, PLAN_MARKER + " " + step)
        if ids[: len(context)] != context or len(ids) == len(context):
            return None
        units[step] = tuple(ids[len(context):])
    ordered = list(steps)
    for a, b in zip(ordered, ordered[1:] + ordered[:1], strict=True):
        if encode(tokenizer, PLAN_MARKER + format_plan([a, b])) != \
                context + list(units[a]) + list(units[b]):
            return None
    return units


def surface_units(tokenizer, steps: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Each unit ``" " + step`` written with the fewest tokens whose decoded text is the unit.

    A token's *surface* is the text it adds when decoded after ``plan:``; a unit's tokens are a
    shortest sequence of surfaces spelling it (dynamic programming over its characters), and
    decoding ``plan:`` followed by the units of consecutive steps is checked to give the plan.

    Raises:
        ValueError: If a unit cannot be spelled, or the spelled units do not decode to the plan.
    """
    context = encode(tokenizer, PLAN_MARKER)
    head = tokenizer.decode(context, skip_special_tokens=False)
    raw = hasattr(tokenizer, "encode_batch")  # a raw tokenizers.Tokenizer
    rows = [[*context, tok] for tok in range(tokenizer.get_vocab_size() if raw
                                             else len(tokenizer))]
    texts = (tokenizer.decode_batch(rows, skip_special_tokens=False) if raw
             else tokenizer.batch_decode(rows, skip_special_tokens=False))
    chars, special = set(format_plan(steps)), set(getattr(tokenizer, "all_special_ids", ()))
    surface: dict[str, int] = {}
    for tok, text in enumerate(texts):
        piece = text[len(head):] if text.startswith(head) else ""
        if tok not in special and piece and set(piece) <= chars:
            surface.setdefault(piece, tok)
    longest = max(map(len, surface), default=0)
    units: dict[str, tuple[int, ...]] = {}
    for step in steps:
        unit = " " + step
        best: list[tuple[int, ...] | None] = [()] + [None] * len(unit)  # best[i]: unit[:i]
        for i in range(len(unit)):
            done = best[i]
            if done is None:
                continue
            for j in range(i + 1, min(len(unit), i + longest) + 1):
                tok = surface.get(unit[i:j])
                if tok is not None and (best[j] is None or len(done) + 1 < len(best[j])):
                    best[j] = (*done, tok)
        if best[-1] is None:
            raise ValueError(f"no tokens of the tokenizer decode to the step {step!r}")
        units[step] = best[-1]
    ordered = list(steps)
    for a, b in zip(ordered, ordered[1:] + ordered[:1], strict=True):
        text = tokenizer.decode([*context, *units[a], *units[b]], skip_special_tokens=False)
        if text != head + format_plan([a, b]):
            raise ValueError(f"the tokens spelling the steps {a!r} and {b!r} decode to "
                             f"{text[len(head):]!r}; constrained decoding needs tokens that "
                             "decode to each step")
    return units
