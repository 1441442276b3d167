"""What the policy server checks in a received observation before any policy sees it.

Usage: ``obs = check_observation(unpack(message))`` (raises :class:`BadRequest` naming the field)

The checks bound what one message can make the policy hold (one frame per camera, short
instructions, few committed actions) and catch the mistakes a careless client makes (wrong
types, shapes, NaN); the policy's own checks (``VLAModel.prepare``) come after them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.wire import excerpt

MAX_INSTRUCTION_CHARS = 512
MAX_ERROR_CHARS = 500
"""Longest error text the server sends or logs (a message can hold 16 MiB of text to quote)."""
MAX_PREV_ACTIONS = 1024
"""Rows of ``prev_actions`` a request may carry (real-time chunking)."""

_NUMBER_KINDS = "biuf"  # bool, int, uint, float: what torch takes from a numpy array


class BadRequest(ValueError):
    """An observation the policy cannot take (the text says why)."""


def clip_error(text: str) -> str:
    """``text`` cut to :data:`MAX_ERROR_CHARS` characters (its end says how long it was)."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]}... ({len(text):,} characters)"


def _field(key: str) -> str:
    """A client-chosen key as error texts name it: as sent if short and plain, else quoted."""
    return key if len(key) <= 60 and key.isprintable() else excerpt(key)


def _check_numbers(key: str, value: Any) -> np.ndarray:
    """``value`` as an array of plain numbers, or :class:`BadRequest` naming ``key``."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged or too deeply nested lists
        raise BadRequest(f"{key} is not an array of numbers: {err}") from None
    if array.dtype.kind not in _NUMBER_KINDS or array.dtype.itemsize > 8:
        raise BadRequest(f"{key} must hold numbers (bool, int or float of up to 64 bits), got "
                         f"dtype {array.dtype}")
    return array


def check_observation(obs: Any) -> dict[str, Any]:
    """A received message as one observation: string keys, ``prompt`` -> ``instruction``.

    Raises:
        BadRequest: If the message is not a map with string keys, an image is not one
            non-empty ``(H, W, 3)`` numeric array, the state does not hold plain numbers, or
            the instruction is not a string of at most :data:`MAX_INSTRUCTION_CHARS`
            characters.
    """
    if not isinstance(obs, dict):
        raise BadRequest(f"an observation must be a map, got {type(obs).__name__}")
    bad = [k for k in obs if not isinstance(k, str)]
    if bad:
        raise BadRequest(f"observation keys must be strings, got {len(bad)} other key(s)")
    obs = dict(obs)
    if "instruction" not in obs and "prompt" in obs:
        obs["instruction"] = obs.pop("prompt")
    for key, value in obs.items():
        if "image" not in key:
            continue
        name = _field(key)
        if not isinstance(value, np.ndarray):
            raise BadRequest(f"{name} must be an (H, W, 3) array, got {type(value).__name__}")
        if value.ndim != 3 or value.shape[-1] != 3:
            raise BadRequest(f"{name} must be one (H, W, 3) frame, got shape {value.shape[:8]}")
        if value.size == 0:
            raise BadRequest(f"{name} is empty: shape {value.shape}")
        _check_numbers(name, value)
    if "state" in obs:
        _check_numbers("state", obs["state"])
    _check_committed(obs)
    text = obs.get("instruction")
    if text is not None and not isinstance(text, str):
        raise BadRequest(f"instruction must be a string, got {type(text).__name__}")
    if text is not None and len(text) > MAX_INSTRUCTION_CHARS:
        raise BadRequest(f"instruction must be at most {MAX_INSTRUCTION_CHARS} characters, got "
                         f"{len(text)}")
    return obs


def _check_committed(obs: dict[str, Any]) -> None:
    """Validate the optional real-time-chunking keys ``prev_actions`` and ``frozen_steps``."""
    frozen = obs.get("frozen_steps")
    if "prev_actions" not in obs:
        if frozen is not None:
            raise BadRequest("frozen_steps needs prev_actions")
        return
    prev = _check_numbers("prev_actions", obs["prev_actions"])
    if prev.ndim != 2 or not 1 <= prev.shape[0] <= MAX_PREV_ACTIONS or prev.shape[1] < 1:
        raise BadRequest(f"prev_actions must be an (m, D) array with 1 <= m <= "
                         f"{MAX_PREV_ACTIONS}, got shape {prev.shape[:8]}")
    if not np.all(np.isfinite(prev)):
        raise BadRequest("prev_actions has non-finite values")
    if frozen is not None and (isinstance(frozen, bool) or not isinstance(frozen, int | np.integer)
                               or not 0 <= frozen <= prev.shape[0]):
        raise BadRequest(f"frozen_steps must be an int in [0, {prev.shape[0]}], got "
                         f"{excerpt(frozen)}")
