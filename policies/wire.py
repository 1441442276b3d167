"""The msgpack-numpy wire format of openpi's policy server, with checks on what is received.

    from policies.wire import pack, unpack
    assert unpack(pack({"state": np.zeros(7, np.float32)}))["state"].shape == (7,)

Byte-for-byte the format of ``openpi_client.msgpack_numpy`` (arrays as maps with the keys
``__ndarray__``, ``data``, ``dtype``, ``shape``; numpy scalars with ``__npgeneric__``), so the
published client reads what we send and we read what it sends. It lives here rather than being
imported from ``openpi-client`` because that package pins ``numpy<2`` and cannot be a declared
dependency, and because the receiving side checks what arrives: a malformed or hostile array
map (wrong byte count, object or void dtype) raises :class:`WireError` instead of crashing or
unpickling anything. No pickle is used anywhere.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import msgpack
import numpy as np


class WireError(ValueError):
    """A message is not valid msgpack-numpy (the text says what is wrong)."""


MAX_CONTAINER_LEN = 4096
"""Most elements of one received list or map: an observation holds a few keys and short shape
lists, and this keeps a crafted message from expanding ~75x into millions of empty objects."""

_repr = reprlib.Repr()  # error texts show a bounded excerpt of what was received
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxtuple = 8
_short = _repr.repr


_BAD_KINDS = ("V", "O", "c")  # void, object and complex dtypes are not sent (as openpi)


def _encode(obj: Any) -> Any:
    """The msgpack ``default`` hook: numpy arrays and scalars -> tagged maps."""
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind in _BAD_KINDS:
        raise WireError(f"cannot send dtype {obj.dtype} (void, object and complex are refused)")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(),
                b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireError(f"cannot send {type(obj).__name__} (send numbers, strings, lists, dicts "
                    "and numpy arrays)")


def _dtype(value: Any) -> np.dtype:
    """The dtype named by a received map, refusing kinds that could carry Python objects."""
    try:
        dtype = np.dtype(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        raise WireError(f"unknown dtype {_short(value)}") from None
    if dtype.kind in _BAD_KINDS:
        raise WireError(f"dtype {dtype} is refused (void, object and complex)")
    return dtype


def _decode(obj: dict) -> Any:
    """The msgpack ``object_hook``: tagged maps -> writable numpy arrays and scalars."""
    if b"__ndarray__" in obj:
        try:
            dtype, shape, data = _dtype(obj[b"dtype"]), tuple(obj[b"shape"]), obj[b"data"]
        except (KeyError, TypeError):
            raise WireError("an array map needs 'data', 'dtype' and 'shape'") from None
        if not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(data, bytes):
            raise WireError(f"bad array shape {_short(shape)} or data of type "
                            f"{type(data).__name__}")
        need = dtype.itemsize * math.prod(shape)  # Python ints: a huge shape cannot wrap to 0
        if len(data) != need:
            raise WireError(f"array of shape {_short(shape)} and dtype {dtype} needs {need} "
                            f"bytes, got {len(data)}")
        array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        if dtype.kind == "b" and array.view(np.uint8).max(initial=0) > 1:
            raise WireError("a bool array holds bytes other than 0 and 1")
        return array
    if b"__npgeneric__" in obj:
        try:
            return _dtype(obj[b"dtype"]).type(obj[b"data"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise WireError("bad numpy scalar map") from None
    return obj


def pack(obj: Any) -> bytes:
    """Serialize ``obj`` (dicts, lists, numbers, strings, numpy arrays and scalars)."""
    return msgpack.packb(obj, default=_encode)


def unpack(data: bytes) -> Any:
    """Deserialize one message; raises :class:`WireError` if it is not valid msgpack-numpy."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_decode, max_array_len=MAX_CONTAINER_LEN,
                               max_map_len=MAX_CONTAINER_LEN)
    except WireError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError) as err:
        raise WireError(f"not a msgpack message: {_short(str(err))}") from None
