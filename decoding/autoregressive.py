"""Autoregressive decoding with a KV cache: greedy, temperature, top-k and top-p sampling."""

from __future__ import annotations

from typing import Any

import torch

from decoding import adapter
from decoding._checks import (
    check_eos,
    check_input_ids,
    check_positive_int,
    check_prefix_tokens,
    check_sampling,
)
from decoding.constraints import as_processor_list, process_scores
from decoding.result import DecodeResult, pad_after_eos
from decoding.sampling import choose


@torch.no_grad()
def autoregressive(model: Any, input_ids: torch.Tensor, max_new_tokens: int, *,
                   temperature: float = 0.0, top_k: int | None = None,
                   top_p: float | None = None, eos_token_id: int | None = None,
                   logits_processor: Any = None, cache: Any = None,
                   generator: torch.Generator | None = None,
                   prefix_tokens: torch.Tensor | None = None) -> DecodeResult:
    """Generate ``max_new_tokens`` tokens one model pass at a time.

    The first pass consumes ``input_ids`` (after the optional prefix ``cache``) and yields the
    first token; each later pass feeds the previous token. Generating ``n`` tokens costs ``n``
    passes (``nfe``); decoding stops early once every row has emitted ``eos_token_id``.

    With ``prefix_tokens`` (``d`` frozen tokens, e.g. the committed actions of real-time
    chunking) the output starts with them unchanged: they are teacher-forced in the first pass
    (which also consumes ``input_ids``) and decoding continues after them, so the ``n - d``
    decoded tokens cost ``n - d`` passes; the frozen tokens are not counted in ``nfe``.

    Args:
        model: Causal LM with the Hugging Face calling convention (see :mod:`decoding.adapter`).
        input_ids: LongTensor ``[B, T]``, ``T >= 1``; the tokens after the prefix ``cache``.
        max_new_tokens: Number of tokens to generate (>= 1).
        temperature: 0 for greedy (argmax), else the sampling temperature.
        top_k: Sample among the ``top_k`` best tokens only (ignored when greedy).
        top_p: Sample from the smallest nucleus of mass ``top_p`` (ignored when greedy).
        eos_token_id: Stop a row after this token; ``None`` never stops early (the model's
            config is not consulted).
        logits_processor: A processor or list of processors ``(input_ids, scores) -> scores``
            (see :mod:`decoding.constraints` for what they see).
        cache: Optional pre-filled prefix cache (``transformers.DynamicCache``); cropped back
            to its length afterwards, never left changed.
        generator: Random generator for sampling.
        prefix_tokens: Optional frozen first output tokens, LongTensor ``[B, d]`` or ``[d]``
            with ``d <= max_new_tokens``; processors see them as context.

    Returns:
        :class:`DecodeResult` with ``tokens [B, max_new_tokens]`` (EOS-padded), ``lengths``,
        ``nfe`` and ``stats`` (``{"steps": passes}``).

    Raises:
        ValueError: On malformed arguments or a processor that masks every token.
    """
    input_ids = check_input_ids(input_ids)
    check_positive_int(max_new_tokens, "max_new_tokens")
    check_sampling(temperature, top_k, top_p)
    eos = check_eos(eos_token_id)
    processors = as_processor_list(logits_processor)
    batch = input_ids.shape[0]
    out = input_ids.new_full((batch, max_new_tokens), eos if eos is not None else 0)
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    history, first = input_ids, 0
    prefix = check_prefix_tokens(prefix_tokens, batch, max_new_tokens)
    if prefix is not None:  # frozen tokens: copied out, fed with the input in the first pass
        first = prefix.shape[1]
        out[:, :first] = prefix
        history = torch.cat([input_ids, prefix.to(input_ids.device)], dim=1)
        if eos is not None:
            finished = (prefix == eos).any(1).to(finished.device)
    feed, nfe = history, 0
    with adapter.restored(cache) as kv:
        for step in range(first, max_new_tokens):
            if bool(finished.all()):
                break
            # One pass: logits of the next token given everything so far (last position only).
            logits, kv = adapter.forward(model, feed, kv, logits_to_keep=1)
            nfe += 1
            # Constrain (finished rows may be fully masked; their tokens are padding).
            scores, _ = process_scores(processors, history, logits[:, -1], required=~finished)
            token = choose(scores, temperature, top_k, top_p, generator)
            if eos is not None:
                token = token.masked_fill(finished, eos)
                finished = finished | (token == eos)
            out[:, step] = token
            if bool(finished.all()):
                break
            feed = token[:, None]
            history = torch.cat([history, feed], dim=1)
    tokens, lengths = pad_after_eos(out, eos)
    return DecodeResult(tokens=tokens, lengths=lengths, nfe=nfe, stats={"steps": nfe})
