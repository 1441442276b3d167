"""The Planner API: an HF causal LM writes a plan that satisfies an LTLf spec by construction.

Usage::

    from planners import Planner
    planner = Planner.from_default("drone_nav")
    plan = planner.plan("go to the cafe, never enter the reception",
                        ltl="F(cafe) & G(!reception)", state="lobby")
    plan.steps, plan.satisfied, plan.valid, plan.stats

Without ``ltl`` the plan is only grounded (every step executable, spec ``true``); with
``constrained=False`` the LM decodes freely and the plan is checked afterwards (the baseline).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.symbolic import SymbolicDomain, make_domain
from planners.check import ProductGraph, UnsatisfiableSpecError, spec_dfa
from planners.plan_text import StepTrie, encode, format_plan, format_prompt, parse_plan

DEFAULT_LM_DIR = Path(__file__).resolve().parent / "default_lm"


class PromptTooLongError(ValueError):
    """The prompt leaves no room for a plan in the model's context."""


@dataclass
class Plan:
    """A generated plan.

    Attributes:
        steps: The step strings.
        text: The generated text after ``plan:`` (without EOS).
        satisfied: Valid and the trace satisfies the spec.
        valid: Every step is executable from the initial state.
        states: The visited domain states s0.. (up to the first invalid step).
        stats: Decode statistics: ``new_tokens``, ``seconds``, ``tokens_per_s``,
            ``mask_us_per_token`` (constrained only), ``stop`` (``"eos"``, ``"budget"`` or
            ``"no_plan_within_budget"``), ``constrained``, the budget (``max_steps``,
            ``max_new_tokens``, ``context``: the tokens the model's context leaves after the
            prompt, None if unknown) and ``limited_by``: ``"context"`` where the context, not the
            spec, excluded steps (or left no plan), ``"max_new_tokens"`` where the caller's
            ``max_new_tokens`` did, ``"max_steps"`` where the step budget did, else None.
    """

    steps: list[str]
    text: str
    satisfied: bool
    valid: bool
    states: list[Any] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


EOS_TOKENS = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|im_end|>", "[SEP]")
"""End-of-text tokens looked for in a raw tokenizer's vocabulary, in this order."""


def as_hf_tokenizer(tokenizer):
    """Wrap a raw ``tokenizers.Tokenizer`` in ``PreTrainedTokenizerFast``; pass HF ones through.

    The wrapper's EOS is the first of :data:`EOS_TOKENS` in the raw tokenizer's vocabulary.

    Raises:
        ValueError: If a raw tokenizer has none of them.
    """
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "convert_ids_to_tokens"):
        from transformers import PreTrainedTokenizerFast

        eos = next((t for t in EOS_TOKENS if tokenizer.token_to_id(t) is not None), None)
        if eos is None:
            raise ValueError(f"the raw tokenizer has none of the EOS tokens {EOS_TOKENS}; pass "
                             "PreTrainedTokenizerFast(tokenizer_object=..., eos_token=...)")
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos)
    return tokenizer


class Planner:
    """Plan with any HF causal LM under LTLf constraints over a symbolic domain.

    Args:
        model: A ``transformers`` causal LM (or anything with ``generate`` and the HF call
            convention).
        tokenizer: Its tokenizer (HF or a raw ``tokenizers.Tokenizer``); must have an EOS token.
        domain: The symbolic domain plans are grounded in.
        max_steps: Step budget of a plan (constrained decoding never exceeds it and finds a
            satisfying plan within it whenever one exists). The model's context
            (``n_positions``) bounds the plan's tokens too: the tokens of the steps actually
            taken, plus EOS, must fit after the prompt, and constrained decoding finds a
            satisfying plan whenever one fits both budgets.
    """

    def __init__(self, model, tokenizer, domain: SymbolicDomain, max_steps: int = 16) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.model, self.tokenizer, self.domain = model, as_hf_tokenizer(tokenizer), domain
        if self.tokenizer.eos_token_id is None:
            raise ValueError("tokenizer must define an EOS token (it ends every plan)")
        self.max_steps = max_steps
        self.trie = StepTrie.build(self.tokenizer, domain.steps())
        self._graphs: dict[tuple[str, Hashable], ProductGraph] = {}
        self._prefix: tuple[tuple[int, ...], Any] | None = None  # (prompt ids, KV cache)

    @classmethod
    def from_default(cls, domain_name: str, domain: SymbolicDomain | None = None,
                     **kwargs) -> Planner:
        """Load the shipped default LM of a domain (offline) from ``planners/default_lm``.

        Args:
            domain_name: ``drone_nav``, ``blocks_world`` or ``tabletop_rearrange``.
            domain: The domain instance to plan in (default: ``make_domain(domain_name)``).
            **kwargs: Passed to the constructor (``max_steps``).

        Raises:
            ValueError: If no default LM exists for ``domain_name``.
        """
        from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

        path = DEFAULT_LM_DIR / domain_name
        if not (path / "model.safetensors").exists():
            known = sorted(p.name for p in DEFAULT_LM_DIR.glob("*") if p.is_dir())
            raise ValueError(f"no default LM for domain_name={domain_name!r}; shipped: {known}")
        model = GPT2LMHeadModel.from_pretrained(path).eval()
        tok = PreTrainedTokenizerFast.from_pretrained(path)
        return cls(model, tok, domain or make_domain(domain_name), **kwargs)

    def with_domain(self, domain: SymbolicDomain) -> Planner:
        """The same LM planning in another domain instance (e.g. another building layout)."""
        return Planner(self.model, self.tokenizer, domain, self.max_steps)

    def context_limit(self) -> int | None:
        """The model's maximum sequence length (``n_positions``/``max_position_embeddings``)."""
        cfg = getattr(self.model, "config", None)
        for name in ("n_positions", "max_position_embeddings"):
            value = getattr(cfg, name, None)
            if isinstance(value, int):
                return value
        return None

    def graph(self, ltl, state: Hashable) -> ProductGraph:
        """The product graph of ``ltl`` from ``state`` (cached); checks atoms."""
        key = (str(ltl), state)
        if key not in self._graphs:
            self._graphs[key] = ProductGraph(self.domain, spec_dfa(self.domain, ltl), state)
        return self._graphs[key]

    def plan(self, instruction: str, ltl=None, state: Hashable = None, *,
             constrained: bool = True, decoder: str = "generate", **decode_kwargs) -> Plan:
        """Write a plan for ``instruction`` from ``state`` satisfying ``ltl``.

        Args:
            instruction: The task in words (goes into the prompt).
            ltl: LTLf spec (text or ``LTLf``); None means ``true`` (grounding only).
            state: Initial domain state (default: the domain's ``start``/``initial()``).
            constrained: Mask the LM with :class:`LTLLogitsProcessor` (False: free decoding).
            decoder: ``"generate"`` (``model.generate``: greedy, sampling or beam search via
                ``decode_kwargs``) or ``"autoregressive"`` (``decoding.autoregressive``,
                ``temperature``/``top_k``/``top_p`` kwargs, with the prompt's KV cache kept
                across calls on the same prompt).
            **decode_kwargs: Passed to the decoder (e.g. ``do_sample=True, num_beams=4``);
                ``max_new_tokens`` caps the plan's tokens (EOS included) like the context does.

        Returns:
            The :class:`Plan`.

        Raises:
            TypeError: If ``instruction`` is not a str or ``state`` has the wrong type.
            InvalidStateError: If ``state`` is not a state of the domain (e.g. an unknown room).
            UnknownAtomError: If ``ltl`` uses atoms the domain lacks (lists the domain's atoms).
            UnsatisfiableSpecError: If no plan satisfies ``ltl`` from ``state`` (no LM call).
            PromptTooLongError: If the prompt leaves no room in the model's context.
            ConstraintConflictError: If another logits processor or decode option banned every
                token the constraint allows (e.g. ``no_repeat_ngram_size`` on a plan that
                repeats a step); a truncated or unsafe plan is never returned.
        """
        import torch

        from planners.constrained import ConstraintConflictError, LTLLogitsProcessor

        if decoder not in ("generate", "autoregressive"):
            raise ValueError(f"decoder must be 'generate' or 'autoregressive', got {decoder!r}")
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
        if state is None:
            state = getattr(self.domain, "start", None)
            state = self.domain.initial() if state is None else state
        state = self.domain.validate_state(state)
        ltl = "true" if ltl is None else ltl
        graph = self.graph(ltl, state)
        if graph.root not in graph.dist:
            raise UnsatisfiableSpecError(f"no plan satisfies {str(ltl)!r} from {state!r} in "
                                         f"{self.domain!r}")
        prompt = format_prompt(self.domain.describe(state), instruction)
        ids = encode(self.tokenizer, prompt)
        bos = self.tokenizer.bos_token_id
        if bos is not None and bos != self.tokenizer.eos_token_id:
            ids = [bos, *ids]
        eos = self.tokenizer.eos_token_id
        max_steps = self.max_steps
        max_new = max_steps * self.trie.max_unit_length + 1  # enough for any plan in the budget
        room = self.context_room(len(ids), len(prompt))
        cap = decode_kwargs.pop("max_new_tokens", None)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_new_tokens must be an int >= 1 (EOS included), got {cap!r}")
        tight = "max_new_tokens" if cap is not None and (room is None or cap < room) else "context"
        tokens = cap if tight == "max_new_tokens" else room
        max_tokens = tokens if tokens is not None and tokens < max_new else None  # binds: pass it
        max_new = max_new if max_tokens is None else max_tokens
        input_ids = torch.tensor([ids], dtype=torch.long)
        proc = LTLLogitsProcessor(graph, self.trie, len(ids), eos, max_steps, max_tokens)
        budget = {"max_steps": max_steps, "max_new_tokens": max_new, "context": room}
        fewest = proc.fewest_tokens(graph.root, max_steps)
        if fewest + 1 > max_new:  # a clear result instead of a hopeless decode
            limited = tight if graph.dist[graph.root] <= max_steps else "max_steps"
            return Plan([], "", False, True, [state],
                        {"stop": "no_plan_within_budget", "constrained": constrained,
                         "shortest": graph.dist[graph.root], "fewest_tokens": fewest + 1,
                         "limited_by": limited, **budget})
        t0 = time.perf_counter()
        use = proc if constrained else None
        try:
            if decoder == "generate":
                new = self._generate(input_ids, max_new, use, eos, decode_kwargs)
            else:
                new = self._autoregressive(input_ids, max_new, use, eos, decode_kwargs)
        except RuntimeError as err:  # sampling from a row that another processor emptied
            if use is not None and "probability tensor" in str(err):
                raise ConstraintConflictError(
                    "sampling found no allowed token with finite probability: a logits "
                    "processor or warper that runs after LTLLogitsProcessor banned every "
                    "token the LTL constraint allows") from err
            raise
        seconds = time.perf_counter() - t0
        stop = "eos" if eos in new else "budget"
        if use is not None:  # never return a plan the constraint did not produce in full
            proc.check_plan_tokens(new[: new.index(eos) + 1] if eos in new else new)
        new = new[: new.index(eos)] if eos in new else new
        steps, text = self.plan_steps(new)
        run = self.domain.execute(state, steps)
        satisfied = run.valid and graph.dfa.accepts(self.domain.trace(run.states))
        limited = proc.limited_by(new) if use is not None else None
        stats = {"new_tokens": len(new) + (stop == "eos"), "seconds": seconds,
                 "tokens_per_s": (len(new) + 1) / max(seconds, 1e-9), "stop": stop,
                 "constrained": constrained, "decoder": decoder, **budget,
                 "limited_by": tight if limited == "context" else limited}
        if use is not None:
            stats.update(mask_us_per_token=proc.us_per_row, masks_built=proc.masks_built,
                         dead_ends=proc.dead_ends)
        return Plan(steps, text, satisfied, run.valid, list(run.states), stats)

    def context_room(self, prompt_tokens: int, prompt_chars: int) -> int | None:
        """Tokens a plan may take (EOS included) after a prompt, or None without a known limit.

        Raises:
            PromptTooLongError: If the prompt leaves no room in the model's context.
        """
        limit = self.context_limit()
        if limit is None:
            return None
        room = limit - prompt_tokens
        if room < 1:
            raise PromptTooLongError(
                f"the prompt does not fit the model's context: it is {prompt_tokens} tokens "
                f"({prompt_chars} characters, state description and instruction) and the model "
                f"holds {limit} positions, leaving {room} for the plan (at least 1 is needed "
                "for EOS); shorten the instruction")
        return room

    def plan_steps(self, tokens: list[int]) -> tuple[list[str], str]:
        """The steps and plan text of generated tokens (without EOS).

        Units the step trie matches become their step strings, so the text never depends on how
        the tokenizer's ``decode`` spaces tokens (WordPiece puts spaces around punctuation);
        tokens after the first unmatched unit are decoded and split as free text.
        """
        steps, rest = self.trie.match(tokens)
        tail = self.tokenizer.decode(tokens[rest:], skip_special_tokens=False) \
            if rest < len(tokens) else ""
        return steps + parse_plan(tail), format_plan(steps) + tail

    def _generate(self, input_ids, max_new: int, proc, eos: int, kwargs: dict) -> list[int]:
        """Decode with ``model.generate``; returns the new token ids of the best sequence.

        A ``logits_processor`` list in ``kwargs`` runs before the LTL processor, which comes
        last so it sees what the others banned.
        """
        import torch
        from transformers import LogitsProcessorList

        kwargs = {"do_sample": False, **kwargs}
        user = list(kwargs.pop("logits_processor", None) or [])
        with torch.no_grad():
            out = self.model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new,
                logits_processor=LogitsProcessorList(user + ([proc] if proc else [])),
                eos_token_id=eos, pad_token_id=eos, **kwargs)
        return out[0, input_ids.shape[1]:].tolist()

    def _autoregressive(self, input_ids, max_new: int, proc, eos: int, kwargs: dict
                        ) -> list[int]:
        """Decode with ``decoding.autoregressive`` from a cached prompt prefix.

        The prompt (all but its last token) is encoded once into a KV cache that every decode
        of the same prompt reuses; the decoder never changes it.
        """
        from decoding import adapter, autoregressive

        key = tuple(input_ids[0].tolist())
        if self._prefix is None or self._prefix[0] != key:
            _, cache = adapter.forward(self.model, input_ids[:, :-1], None)
            self._prefix = (key, cache)
        if proc is not None:  # the decoder shows processors the tokens after the cache only
            proc.prompt_length = 1
        kwargs = dict(kwargs)
        procs = list(kwargs.pop("logits_processor", None) or []) + ([proc] if proc else [])
        result = autoregressive(self.model, input_ids[:, -1:], max_new, eos_token_id=eos,
                                logits_processor=procs or None,
                                cache=self._prefix[1], **kwargs)
        return result.tokens[0, : int(result.lengths[0])].tolist()
