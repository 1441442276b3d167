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

What one received message can cost is bounded before anything is built: :func:`unpack` first
walks the msgpack headers (:func:`count_objects`, no allocation) and refuses a message of more
than :data:`MAX_OBJECTS` objects in all, nested deeper than :data:`MAX_DEPTH`, or with a list or
map longer than :data:`MAX_CONTAINER_LEN`. Without the total, 16 MiB of nested empty maps
expanded to over 1 GiB of Python objects, although every single list was short.
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

MAX_OBJECTS = 16_384
"""Most msgpack objects (containers, scalars, strings, byte strings) in one received message:
an observation holds a few dozen (images and states travel as one byte string each), and this
bounds what a message can expand into (~200 bytes of Python objects per msgpack object)."""

MAX_DEPTH = 32
"""Deepest nesting of lists and maps in one received message (an observation needs ~4)."""

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 8
excerpt = _repr.repr
"""A bounded excerpt of what a client sent, as error texts quote it."""


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


MAX_DTYPE_CHARS = 32
"""Longest dtype name accepted (what numpy's ``dtype.str`` sends is a few characters): numpy
parses a name's ``(shape)`` part with ``ast.literal_eval``, which took seconds on a 2 MB name."""


def _dtype(value: Any) -> np.dtype:
    """The dtype named by a received map, refusing kinds that could carry Python objects."""
    if not isinstance(value, str | bytes) or len(value) > MAX_DTYPE_CHARS:
        raise WireError(f"a dtype must be a name of at most {MAX_DTYPE_CHARS} characters, "
                        f"got {excerpt(value)}")
    try:
        dtype = np.dtype(value.decode() if isinstance(value, bytes) else value)
    except Exception:  # noqa: BLE001 - numpy's parser also raises SyntaxError and others
        raise WireError(f"unknown dtype {excerpt(value)}") from None
    if dtype.kind in _BAD_KINDS:
        raise WireError(f"dtype {dtype} is refused (void, object and complex)")
    return dtype


def _decode(obj: dict) -> Any:
    """The msgpack ``object_hook``: tagged maps -> writable, native-order arrays and scalars."""
    if b"__ndarray__" in obj:
        try:
            dtype, shape, data = _dtype(obj[b"dtype"]), tuple(obj[b"shape"]), obj[b"data"]
        except (KeyError, TypeError):
            raise WireError("an array map needs 'data', 'dtype' and 'shape'") from None
        if not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(data, bytes):
            raise WireError(f"bad array shape {excerpt(shape)} or data of type "
                            f"{type(data).__name__}")
        need = dtype.itemsize * math.prod(shape)  # Python ints: a huge shape cannot wrap to 0
        if len(data) != need:
            raise WireError(f"array of shape {excerpt(shape)} and dtype {dtype} needs {need} "
                            f"bytes, got {len(data)}")
        # a copy in this machine's byte order: torch refuses a '>f4' array another host sent
        array = np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        if dtype.kind == "b" and array.view(np.uint8).max(initial=0) > 1:
            raise WireError("a bool array holds bytes other than 0 and 1")
        return array
    if b"__npgeneric__" in obj:
        try:
            return _dtype(obj[b"dtype"]).type(obj[b"data"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise WireError("bad numpy scalar map") from None
    return obj


_FIXED = {0xc0: 1, 0xc2: 1, 0xc3: 1, 0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9,
          0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9, 0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18}
"""Sizes of the msgpack types whose size is in their first byte (nil, bools, numbers, fixext)."""

_SIZED = {0xc4: (1, 1), 0xc5: (2, 1), 0xc6: (4, 1), 0xc7: (1, 2), 0xc8: (2, 2), 0xc9: (4, 2),
          0xd9: (1, 1), 0xda: (2, 1), 0xdb: (4, 1)}
"""bin, ext and str types: (bytes of the length field, header bytes before it incl. the tag)."""

_CONTAINERS = {0xdc: (2, 1), 0xdd: (4, 1), 0xde: (2, 2), 0xdf: (4, 2)}
"""array16/32 and map16/32: (bytes of the count field, objects per counted element)."""


def count_objects(data: bytes | bytearray | memoryview, max_objects: int = MAX_OBJECTS,
                  max_depth: int = MAX_DEPTH) -> int:
    """Count the msgpack objects of one message from its headers, without decoding it.

    Walks the type bytes only (payloads are skipped by their length), so its cost is bounded by
    ``max_objects`` whatever the message claims. Truncated input is left to the decoder.

    Raises:
        WireError: If the message holds more than ``max_objects`` objects, nests lists and maps
            deeper than ``max_depth``, has a list or map of more than
            :data:`MAX_CONTAINER_LEN` elements, or uses the reserved type byte 0xc1.
    """
    view = memoryview(data).cast("B")
    pos, count, size = 0, 0, len(view)
    pending = [1]  # objects still to read at each open level (the message is one object)
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        count += 1
        if count > max_objects:
            raise WireError(f"message holds more than {max_objects} objects")
        if pos >= size:
            break  # truncated: msgpack itself says so
        tag = view[pos]
        children = 0
        if tag <= 0x7f or tag >= 0xe0:  # fixint
            pos += 1
        elif tag <= 0x8f:  # fixmap
            children, pos = 2 * (tag & 0x0f), pos + 1
        elif tag <= 0x9f:  # fixarray
            children, pos = tag & 0x0f, pos + 1
        elif tag <= 0xbf:  # fixstr
            pos += 1 + (tag & 0x1f)
        elif tag in _FIXED:
            pos += _FIXED[tag]
        elif tag in _SIZED:
            width, head = _SIZED[tag]
            length = int.from_bytes(view[pos + 1:pos + 1 + width], "big")
            pos += 1 + width + (head - 1) + length
        elif tag in _CONTAINERS:
            width, per = _CONTAINERS[tag]
            length = int.from_bytes(view[pos + 1:pos + 1 + width], "big")
            if length > MAX_CONTAINER_LEN:
                raise WireError(f"a list or map of {length} elements (at most "
                                f"{MAX_CONTAINER_LEN})")
            children, pos = per * length, pos + 1 + width
        else:
            raise WireError(f"not a msgpack message: reserved type byte {tag:#04x} at {pos}")
        if children:
            pending.append(children)
            if len(pending) > max_depth + 1:
                raise WireError(f"message is nested deeper than {max_depth} levels")
    return count


def pack(obj: Any) -> bytes:
    """Serialize ``obj`` (dicts, lists, numbers, strings, numpy arrays and scalars)."""
    return msgpack.packb(obj, default=_encode)


def unpack(data: bytes, max_objects: int = MAX_OBJECTS, max_depth: int = MAX_DEPTH) -> Any:
    """Deserialize one message, refusing it before decoding if it is too big (see above).

    Args:
        data: One received binary message.
        max_objects: Most msgpack objects the message may hold (:func:`count_objects`).
        max_depth: Deepest nesting of lists and maps.

    Raises:
        WireError: If it is not valid msgpack-numpy or exceeds a bound (the text says which).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    count_objects(data, max_objects, max_depth)
    try:
        return msgpack.unpackb(data, object_hook=_decode, max_array_len=MAX_CONTAINER_LEN,
                               max_map_len=MAX_CONTAINER_LEN)
    except WireError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError) as err:
        raise WireError(f"not a msgpack message: {excerpt(str(err) or type(err).__name__)}") \
            from None
