"""Constraints: ``LogitsProcessor``-style callables ``(input_ids, scores) -> scores``.

Every token decoder takes the same list (``logits_processor=``) and applies it in order, as
``transformers.generate`` does, so ``transformers.LogitsProcessor`` objects work unchanged.
A processor forbids a token by setting its score to ``-inf``.

What a processor sees:

* ``autoregressive``: at step ``t`` it gets ``input_ids`` = the decoder's ``input_ids`` (the
  tokens after any pre-filled prefix cache; the cached prefix itself is not shown) followed by
  the ``t`` tokens generated so far, and the scores of the next token.
* ``jacobi``: for block position ``i`` it gets ``input_ids`` = the decoder's ``input_ids`` +
  every accepted token + the current guesses for positions ``0..i-1`` of the block. The guesses
  are unverified, so a processor must be a pure function of the ``input_ids`` it is given (it may
  cache, keyed by the prefix). Only positions whose context is fully accepted are ever kept, so
  a kept token was allowed given the tokens actually before it.
* ``masked_diffusion``: the left context is still masked, so it takes position-local
  constraints instead: a boolean ``allowed`` table ``[L, V]`` (or ``[B, L, V]``).

A processor that forbids every token for a row whose context is real is a bug in the
constraint (or an unsatisfiable one) and raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_processor_list(logits_processor: object) -> list[LogitsProcessor]:
    """Normalize ``None`` / one callable / a sequence of callables to a list."""
    if logits_processor is None:
        return []
    if callable(logits_processor):
        return [logits_processor]
    if isinstance(logits_processor, Sequence) and all(callable(p) for p in logits_processor):
        return list(logits_processor)
    raise ValueError("logits_processor must be None, a callable (input_ids, scores) -> scores, "
                     f"or a list of them; got {type(logits_processor).__name__}")


def apply_processors(processors: Sequence[LogitsProcessor], input_ids: torch.Tensor,
                     scores: torch.Tensor) -> torch.Tensor:
    """Apply ``processors`` in order to next-token ``scores [B, V]`` given ``input_ids [B, T]``."""
    for proc in processors:
        scores = proc(input_ids, scores)
    return scores


def fully_masked(scores: torch.Tensor) -> torch.Tensor:
    """Bool ``[...]``: rows of ``scores [..., V]`` in which no token has a finite-or-+inf score."""
    return ~(scores > float("-inf")).any(dim=-1)


def process_scores(processors: Sequence[LogitsProcessor], input_ids: torch.Tensor,
                   scores: torch.Tensor, required: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply processors, check for rows with every token masked, and neutralize those rows.

    Args:
        processors: The processor list (may be empty).
        input_ids: ``[B, T]`` context given to the processors.
        scores: ``[B, V]`` raw next-token scores.
        required: Bool ``[B]``: rows whose context is real; a fully masked one raises.
            ``None`` checks nothing (the caller checks later, e.g. Jacobi guesses).

    Returns:
        ``(scores, dead)``: processed scores in which fully masked rows are replaced by zeros
        (so argmax and softmax stay defined; their tokens are never kept), and the bool ``[B]``
        mask of those rows.

    Raises:
        ValueError: If a ``required`` row has every token masked.
    """
    if not processors:
        return scores, torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    scores = apply_processors(processors, input_ids, scores)
    dead = fully_masked(scores)
    if required is not None and bool((dead & required).any()):
        raise_all_masked(int((dead & required).nonzero()[0, 0]))
    if bool(dead.any()):
        scores = scores.masked_fill(dead[:, None], 0.0)
    return scores, dead


def raise_all_masked(row: int) -> None:
    """Raise the error for a processor that left no token allowed."""
    raise ValueError(f"logits_processor masked every token (batch row {row}); a constraint "
                     "must leave at least one token allowed")


def tokens_allowed(processors: Sequence[LogitsProcessor], input_ids: torch.Tensor,
                   tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool ``[B]``: whether each ``tokens[b]`` survives the processors after ``input_ids[b]``.

    Used to re-check tokens whose context changed after they were chosen (Jacobi early exit).
    """
    if not processors:
        return torch.ones(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    zeros = torch.zeros(tokens.shape[0], vocab_size, dtype=torch.float64, device=tokens.device)
    scores = apply_processors(processors, input_ids, zeros)
    return scores.gather(1, tokens[:, None])[:, 0] > float("-inf")
