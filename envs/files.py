"""Atomic file writes and bounded reads: a crash or a reader never sees half a file.

Usage: ``write_json_atomic(path, data)``; ``write_text_atomic(path, text)``;
``append_jsonl_atomic(path, record)``; ``read_json_object(path)``

Everything long-running in this project (dataset collection, evaluation, comparisons, result
tables) writes through these: a temporary sibling (``.<name>.tmp-<pid>``) renamed over the
target, or one ``O_APPEND`` write plus ``fsync`` per JSON line.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 2**20
"""Settings files (collect.json, an eval's config.json) are far smaller; bigger ones are refused
unread (a damaged or foreign file could be GiBs)."""


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before ``os.replace`` moves it in: ``.<name>.tmp-<pid>-<tid>``.

    The thread id keeps two threads of one process that write the same file apart.
    """
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_native_id()}")


def remove_temporary_files(folder: Path) -> None:
    """Delete every :func:`temporary_path` file under ``folder``: the leftovers of a crash.

    Call it only while no writer works in ``folder`` (a live writer's file would go too).
    """
    for path in folder.rglob(".*.tmp-*"):
        if path.name.rsplit("-", 1)[1].isdigit() and path.is_file():
            path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a crash leaves the old file or the new one.

    Args:
        path: Target file; its folder is created.
        text: The whole content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as JSON to ``path`` (mode 0644 under the usual umask), atomically.

    Args:
        path: Target file; its folder is created.
        data: JSON-able data.
        indent: JSON indentation (LeRobot's metadata files use 4).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def append_jsonl_atomic(path: str | Path, record: Any) -> None:
    """Append one JSON line durably (single write + fsync), so a crash never leaves half a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Read a small JSON object (a settings file), checking its size before reading it.

    Args:
        path: The file.
        max_bytes: Larger files are refused unread.

    Returns:
        The parsed object.

    Raises:
        ValueError: One line naming ``path``: unreadable, too large, not JSON, or not an object.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{path}: {size:,} bytes is too large for this settings file "
                             f"(at most {max_bytes:,})")
        obj = json.loads(path.read_bytes())
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj
