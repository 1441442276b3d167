"""Build the LeRobotDataset v3.0 files from staged episodes (see ``envs.lerobot_dataset``).

Every file is written atomically; ``meta/info.json`` is removed first and written last, so a
folder with an ``info.json`` is always a complete, consistent dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.files import remove_temporary_files, temporary_path, write_json_atomic
from envs.lerobot_format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH,
    EPISODES_PATH,
    IMAGE_PREFIX,
    INDEX_FEATURES,
    INFO_PATH,
    QUANTILE_FEATURES,
    READ_ERRORS,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILES_SIZE_IN_MB,
    VIDEO_PATH,
    chunk_and_file,
    decode_image,
    feature_stats,
    image_stats,
    staged_file_error,
    tasks_table,
    vector_column,
    write_parquet_atomic,
)

IMAGE_STATS_FRAMES = 256  # frames sampled (evenly) for the per-channel image statistics
VIDEO_CODEC = "libx264"


def consolidate(out: Path, staged: list[Path], metas: list[dict[str, Any]], *,
                spec: dict[str, Any], video: bool = False) -> int:
    """Write ``data/``, ``meta/`` (and ``videos/``) of ``out`` from staged episode files.

    Args:
        out: Dataset folder.
        staged: Staged episode parquet files, in dataset order (episode ``k`` is ``staged[k]``).
        metas: Their episode facts (``seed``, ``success``, ``attempt``, ``fps``, names; with
            ``reset_options`` they add a ``reset_options`` column, JSON).
        spec: The collection settings, recorded under ``info["robodecode"]``.
        video: Encode images to mp4 under ``videos/`` instead of PNG bytes in the data files.

    Returns:
        The number of frames written.

    Raises:
        ValueError: One line naming a staged file that cannot be read.
    """
    (out / INFO_PATH).unlink(missing_ok=True)  # the dataset is incomplete until info.json returns
    remove_temporary_files(out)  # a crash mid-write (this or an earlier consolidation) left them
    fps = metas[0]["fps"]
    task_ids: dict[str, int] = {}
    groups: list[list[pa.Table]] = [[]]
    group_bytes = 0
    episodes: list[dict[str, Any]] = []
    cursor = 0
    for k, (path, meta) in enumerate(zip(staged, metas, strict=True)):
        try:
            t = pq.read_table(path)
        except READ_ERRORS as err:
            raise staged_file_error(path, err) from None
        n = t.num_rows
        tasks = t.column("task").to_pylist()
        cams = [c for c in t.column_names if c.startswith(IMAGE_PREFIX)]
        frame_table = pa.table({
            **{c: t.column(c) for c in cams},
            "observation.state": t.column("observation.state"),
            "action": t.column("action"),
            "timestamp": t.column("timestamp"),
            "frame_index": t.column("frame_index"),
            "episode_index": pa.array(np.full(n, k), pa.int64()),
            "index": pa.array(np.arange(cursor, cursor + n), pa.int64()),
            "task_index": pa.array([task_ids.setdefault(s, len(task_ids)) for s in tasks],
                                   pa.int64()),
        })
        if groups[-1] and group_bytes + frame_table.nbytes > DATA_FILES_SIZE_IN_MB * 2**20:
            groups.append([])
            group_bytes = 0
        groups[-1].append(frame_table)
        group_bytes += frame_table.nbytes
        chunk, file = chunk_and_file(len(groups) - 1)
        episodes.append({
            "episode_index": k, "tasks": list(dict.fromkeys(tasks)), "length": n,
            "data/chunk_index": chunk, "data/file_index": file,
            "dataset_from_index": cursor, "dataset_to_index": cursor + n,
            "seed": meta["seed"], "success": meta["success"], "attempt": meta["attempt"],
        })
        if "reset_options" in meta:  # only runs with reset options add the column
            episodes[-1]["reset_options"] = json.dumps(meta["reset_options"])
        cursor += n

    tables = [pa.concat_tables(g) for g in groups]
    cams = [c for c in tables[0].column_names if c.startswith(IMAGE_PREFIX)]
    written: set[Path] = set()
    first_ep = 0
    for number, table in enumerate(tables):
        chunk, file = chunk_and_file(number)
        n_eps = len(groups[number])
        if video:
            for cam in cams:
                path = out / VIDEO_PATH.format(video_key=cam, chunk_index=chunk, file_index=file)
                _encode_video(table.column(cam), path, fps)
                written.add(path)
                start = 0.0
                for ep in episodes[first_ep:first_ep + n_eps]:
                    ep.update({f"videos/{cam}/chunk_index": chunk, f"videos/{cam}/file_index": file,
                               f"videos/{cam}/from_timestamp": start,
                               f"videos/{cam}/to_timestamp": start + ep["length"] / fps})
                    start += ep["length"] / fps
            table = table.drop_columns(cams)
        path = out / DATA_PATH.format(chunk_index=chunk, file_index=file)
        write_parquet_atomic(table, path)
        written.add(path)
        first_ep += n_eps
    for ep in episodes:
        ep["meta/episodes/chunk_index"] = 0
        ep["meta/episodes/file_index"] = 0
    _remove_stale(out, written)

    write_parquet_atomic(pa.Table.from_pylist(episodes),
                         out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    write_parquet_atomic(tasks_table(list(task_ids)), out / TASKS_PATH)
    write_json_atomic(out / STATS_PATH, _stats(tables, cams), indent=4)
    info = _info(tables, cams, metas, spec, fps, video, n_episodes=len(episodes),
                 n_tasks=len(task_ids))
    write_json_atomic(out / INFO_PATH, info, indent=4)
    return cursor


def _remove_stale(out: Path, written: set[Path]) -> None:
    """Delete data/video files of an earlier consolidation that this one did not rewrite."""
    for pattern in ("data/*/*.parquet", "videos/*/*/*.mp4"):
        for path in out.glob(pattern):
            if path not in written:
                path.unlink()


def _encode_video(column: pa.ChunkedArray, path: Path, fps: float) -> None:
    """Encode PNG-struct frames as one H.264 mp4 (written to a temporary file, then renamed)."""
    import os
    from fractions import Fraction

    import av

    frames = column.combine_chunks().field("bytes").to_pylist()
    first = decode_image(frames[0])
    h, w = first.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"video=True needs even image sizes for yuv420p, got {w}x{h}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "g": "2", "preset": "veryfast"}
        for data in frames:
            frame = av.VideoFrame.from_ndarray(decode_image(data), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, path)


def _stats(tables: list[pa.Table], cams: list[str]) -> dict[str, Any]:
    """``meta/stats.json``: per-feature statistics over every frame (images: a sample)."""
    table = pa.concat_tables(tables)
    stats: dict[str, Any] = {}
    for name in ("observation.state", "action", *INDEX_FEATURES):
        stats[name] = feature_stats(vector_column(table.column(name)),
                                    quantiles=name in QUANTILE_FEATURES)
    rows = np.unique(np.linspace(0, table.num_rows - 1, IMAGE_STATS_FRAMES).astype(np.int64))
    for cam in cams:
        data = table.column(cam).combine_chunks().field("bytes")
        stats[cam] = image_stats(np.stack([decode_image(data[int(i)].as_py()) for i in rows]))
    return stats


def _info(tables: list[pa.Table], cams: list[str], metas: list[dict[str, Any]],
          spec: dict[str, Any], fps: float, video: bool, *, n_episodes: int,
          n_tasks: int) -> dict[str, Any]:
    """``meta/info.json``: the schema, counts, and path templates of the dataset."""
    first = tables[0]
    features: dict[str, Any] = {}
    for cam in cams:
        h, w, c = decode_image(first.column(cam)[0]["bytes"].as_py()).shape
        feature: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [h, w, c],
                                   "names": ["height", "width", "channel"]}
        if video:
            feature["info"] = {"video.fps": fps, "video.height": h, "video.width": w,
                               "video.channels": c, "video.codec": "h264",
                               "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                               "has_audio": False}
        features[cam] = feature
    for name, names_key in (("observation.state", "state_names"), ("action", "action_names")):
        dim = first.schema.field(name).type.list_size
        features[name] = {"dtype": "float32", "shape": [dim], "names": metas[0][names_key]}
    features.update(INDEX_FEATURES)
    total_frames = sum(t.num_rows for t in tables)
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": n_episodes,
        "total_frames": total_frames,
        "total_tasks": n_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{n_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if video else None,
        "features": features,
        "robodecode": {**spec, "episodes_succeeded": sum(m["success"] for m in metas)},
    }
