"""The on-disk conventions of the LeRobotDataset v3.0 layout, shared by our writer and reader.

A v3.0 dataset is a folder::

    meta/info.json                               schema, fps, counts, path templates
    meta/stats.json                              per-feature mean/std/min/max/count (+ q01/q99)
    meta/tasks.parquet                           task string -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode (lengths, index ranges, tasks)
    data/chunk-000/file-000.parquet              one row per frame, many episodes per file
    videos/<key>/chunk-000/file-000.mp4          only for features of dtype "video"

Images of dtype ``image`` live inside the data parquet as structs ``{"bytes": PNG, "path": str}``
(the Hugging Face ``datasets.Image`` encoding LeRobot uses). Everything here is plain pyarrow,
numpy and PIL; writes go through a temporary file and ``os.replace`` so that a reader or a crash
never sees half a file.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.files import temporary_path

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILES_SIZE_IN_MB = 100  # a data file is closed once it holds this much (LeRobot's default)
VIDEO_FILES_SIZE_IN_MB = 500
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
IMAGE_PREFIX = "observation.images."
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
QUANTILE_FEATURES = ("action", "observation.state")  # features whose stats carry q01 / q99
# What reading a damaged parquet or JSON file raises (pyarrow's errors are ValueError/OSError).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, pa.ArrowException)

# Columns every LeRobot frame table has, with their feature descriptions.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def chunk_and_file(file_number: int) -> tuple[int, int]:
    """Split a running file number into LeRobot's ``(chunk_index, file_index)``."""
    return divmod(file_number, CHUNKS_SIZE)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 array as PNG bytes (lossless, fast compression)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG (or any PIL-readable) bytes into an ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def staged_file_error(path: Path, err: BaseException) -> ValueError:
    """The one-line error for a staged episode file that cannot be read; it names the file."""
    reason = " ".join(f"{type(err).__name__}: {err}".split())
    return ValueError(f"{path}: unreadable staged episode ({reason}); delete it and rerun to "
                      "record that attempt again")


def feature_stats(values: np.ndarray, quantiles: bool) -> dict[str, Any]:
    """Per-dimension statistics of ``values`` (frames along axis 0) as JSON-ready lists.

    Args:
        values: Array of shape ``(N,)`` or ``(N, D)``.
        quantiles: Also compute ``q01`` and ``q99`` (the 1st and 99th percentiles).

    Returns:
        ``{"mean", "std", "min", "max", "count"}`` (+ ``"q01", "q99"``), each a list of length D
        (length 1 for scalar features), ``count`` a one-element list as LeRobot writes it.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    if len(x) == 0:
        raise ValueError("feature_stats: values must hold at least one frame")
    out: dict[str, Any] = {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [len(x)],
    }
    if quantiles:
        out["q01"] = np.quantile(x, 0.01, axis=0).tolist()
        out["q99"] = np.quantile(x, 0.99, axis=0).tolist()
    return out


def image_stats(frames: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of uint8 frames ``(N, H, W, 3)`` in [0, 1], shaped (3, 1, 1).

    LeRobot stores image statistics channel-first with singleton spatial dimensions so that they
    broadcast over ``(C, H, W)`` tensors; we follow it.
    """
    x = np.asarray(frames, dtype=np.float64) / 255.0
    per_channel = x.reshape(-1, x.shape[-1])

    def shaped(v: np.ndarray) -> list:
        return v.reshape(-1, 1, 1).tolist()

    return {
        "min": shaped(per_channel.min(0)),
        "max": shaped(per_channel.max(0)),
        "mean": shaped(per_channel.mean(0)),
        "std": shaped(per_channel.std(0)),
        "count": [len(x)],
    }


def tasks_table(tasks: list[str]) -> pa.Table:
    """The ``meta/tasks.parquet`` table: a ``task`` column (the pandas index) and ``task_index``.

    LeRobot writes this file from a pandas DataFrame indexed by the task string; the ``pandas``
    schema metadata added here makes ``pandas.read_parquet`` restore that index, while plain
    pyarrow readers see two ordinary columns.
    """
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return pa.table({"task_index": list(range(len(tasks))), "task": list(tasks)}, schema=schema)


def read_tasks(path: Path) -> dict[int, str]:
    """Read ``meta/tasks.parquet`` (ours or LeRobot's pandas-written one) as task_index -> task."""
    table = pq.read_table(path)
    names = table.column_names
    if "task" in names:
        text_col = "task"
    else:  # a pandas index written without a name, or any single string column
        def is_text(name: str) -> bool:
            typ = table.schema.field(name).type
            return pa.types.is_string(typ) or pa.types.is_large_string(typ)

        candidates = [n for n in names if n != "task_index" and is_text(n)]
        if not candidates:
            raise ValueError(f"{path}: no task string column among {names}")
        text_col = candidates[0]
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(),
                                           table.column(text_col).to_pylist(), strict=True)}


def vector_column(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> np.ndarray:
    """Turn a (fixed-size) list column of numbers into a 2-D numpy array ``(N, D)``.

    Scalar columns become ``(N, 1)``. Rows must all have the same length.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    typ = column.type
    if pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        flat = column.flatten().to_numpy(zero_copy_only=False)
        d = dim if dim is not None else (len(flat) // n if n else 0)
        if n and len(flat) != n * d:
            raise ValueError(f"list column of type {typ} has rows of unequal length")
        return flat.reshape(n, d)
    return column.to_numpy(zero_copy_only=False).reshape(n, 1)
