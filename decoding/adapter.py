"""The one place that knows how to call a Hugging Face causal LM and handle its KV cache.

Calling convention: ``model(input_ids=LongTensor[B, T], cache=<Cache|None>, use_cache=True)``
returning an object with ``.logits`` ``[B, T, V]`` and ``.cache``. transformers moved from
``past_key_values=`` / ``.past_key_values`` to ``cache=`` / ``.cache`` in the 5.2x series (the old
names still work there with a deprecation warning until 5.40 and are the only names before).
:data:`USES_CACHE_KWARG` picks the form from the installed version: ``cache=`` from 5.24,
else ``past_key_values=``, which every release before 5.40 accepts (5.17 silently
ignores an unknown ``cache=``, so the choice matters). The output's cache is read from ``.cache``
and else ``.past_key_values``. Both paths are tested: ``cache=`` on the version CI installs,
``past_key_values=`` on the oldest version pyproject allows (5.17, the lent GPU machines'
release; ``tests/test_install.py``).
Positions are implied by the cache length, so no ``position_ids`` or ``attention_mask`` are
passed: every row of a batch has the same length (no padding inside the prompt).

Decoders need the logits of the last few positions only (AR: 1, Jacobi: the open block), but
a causal LM projects every position onto the vocabulary unless told ``logits_to_keep=N`` (a
prefill of ``T`` prompt tokens then costs a ``T x vocab`` matmul for nothing). :func:`forward`
passes it to models that take it (:func:`takes_logits_to_keep`) and slices the answer of those
that don't, so callers always get exactly the last ``N`` positions.

Prefix caches are never left changed. Rather than copying a caller's cache (``copy.deepcopy``
costs a full copy of every layer per decode), :func:`restored` records its length and crops it
back when the decode ends, error or not. Growing a ``DynamicCache`` concatenates new tensors, so
the prefix entries themselves are never written; crop-back leaves the same values and length.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import weakref
from collections.abc import Iterator
from typing import Any

import torch


def _transformers_version() -> tuple[int, int]:
    try:
        parts = importlib.metadata.version("transformers").split(".")
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (importlib.metadata.PackageNotFoundError, ValueError, IndexError):
        return (0, 0)


#: ``True`` when the installed transformers takes ``cache=`` (5.24 and later).
USES_CACHE_KWARG: bool = _transformers_version() >= (5, 24)

#: The keyword that asks for the logits of the last ``N`` positions only. transformers 4.49
#: renamed ``num_logits_to_keep`` to ``logits_to_keep`` (old name dropped in 4.50); every release
#: pyproject allows takes ``logits_to_keep`` (checked in the sources of 5.17 and 5.25: an int
#: keeps the last ``N`` positions, 0 keeps all).
LOGITS_TO_KEEP_KWARG: str = ("logits_to_keep" if _transformers_version() >= (4, 49)
                             else "num_logits_to_keep")

_TAKES_KEEP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def takes_logits_to_keep(model: Any) -> bool:
    """Whether ``model`` accepts :data:`LOGITS_TO_KEEP_KWARG` (answer cached per model object).

    transformers' generation models answer through ``_supports_logits_to_keep()`` (does
    ``forward`` name the argument?), the check ``generate`` itself makes (it inspects the
    signature, about 30 us, hence the cache). Other models (test stubs, our VLA's head) may
    define the same method; without it the argument is not passed, since a model with a strict
    signature would reject it.
    """
    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weak-referenceable
        return _TAKES_KEEP[model]
    check = getattr(model, f"_supports_{LOGITS_TO_KEEP_KWARG}", None)
    answer = bool(check()) if callable(check) else False
    with contextlib.suppress(TypeError):
        _TAKES_KEEP[model] = answer
    return answer


def forward(model: Any, input_ids: torch.Tensor, cache: Any | None,
            logits_to_keep: int = 0) -> tuple[torch.Tensor, Any]:
    """Run one model pass over ``input_ids`` that extends ``cache``.

    Args:
        model: A causal LM following the Hugging Face calling convention.
        input_ids: LongTensor ``[B, T]``, the tokens after what ``cache`` already holds.
        cache: The KV cache (e.g. ``transformers.DynamicCache``) or ``None`` for an empty one.
        logits_to_keep: Return the logits of the last ``N`` positions only (0: all). Passed
            to the model when it takes it, so it skips the rest of the vocabulary projection.

    Returns:
        ``(logits [B, min(N, T) or T, V], cache)`` where ``cache`` now also holds
        ``input_ids``.
    """
    kwargs = {"cache" if USES_CACHE_KWARG else "past_key_values": cache}
    if logits_to_keep and takes_logits_to_keep(model):
        kwargs[LOGITS_TO_KEEP_KWARG] = logits_to_keep
    out = model(input_ids=input_ids, use_cache=True, **kwargs)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    if new_cache is None:
        raise ValueError("model returned no cache; it must follow the causal-LM convention "
                         "(return .cache or .past_key_values when use_cache=True)")
    logits = out.logits
    return (logits[:, -logits_to_keep:] if logits_to_keep else logits), new_cache


def cache_length(cache: Any | None) -> int:
    """Number of positions held by ``cache`` (0 for ``None``)."""
    return 0 if cache is None else int(cache.get_seq_length())


def crop_to(cache: Any, length: int) -> None:
    """Shorten ``cache`` in place to its first ``length`` positions (no-op if not longer).

    Uses ``crop(-n)`` (drop the last ``n`` positions), which means the same thing in
    transformers 5.24 (where a positive argument is refused) and in older releases (where a
    positive argument was an absolute length).
    """
    extra = cache_length(cache) - length
    if extra > 0:
        cache.crop(-extra)


@contextlib.contextmanager
def restored(cache: Any | None) -> Iterator[Any | None]:
    """Lend a prefix cache to a decode and crop it back to its length afterwards.

    Args:
        cache: The caller's pre-filled prefix cache, or ``None``.

    Yields:
        The same cache object (or ``None``) to extend during the decode.
    """
    if cache is None:
        yield None
        return
    if not hasattr(cache, "crop") or not hasattr(cache, "get_seq_length"):
        raise ValueError("cache must be a transformers Cache with crop() and get_seq_length() "
                         f"(e.g. DynamicCache), got {type(cache).__name__}")
    length = cache_length(cache)
    try:
        yield cache
    finally:
        crop_to(cache, length)


def vocab_size(model: Any) -> int:
    """Best-effort vocabulary size of ``model`` (``config.vocab_size``, else output embeddings).

    Raises:
        ValueError: If neither is available (pass ``vocab_size=`` to the decoder instead).
    """
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    get_out = getattr(model, "get_output_embeddings", None)
    emb = get_out() if callable(get_out) else None
    if emb is not None and hasattr(emb, "weight"):
        return int(emb.weight.shape[0])
    raise ValueError("cannot infer the vocabulary size of model; pass vocab_size=")
