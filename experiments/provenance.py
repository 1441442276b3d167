"""Provenance recorded with every results file: command, git SHA, versions, hardware, threads.

The atomic writers results go through live in :mod:`envs.files` (re-exported here).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envs.files import append_jsonl_atomic, write_json_atomic

__all__ = ["append_jsonl_atomic", "machine", "provenance", "write_json_atomic"]

_PACKAGES = ("robodecode", "torch", "numpy", "transformers", "mujoco", "gymnasium", "metaworld")


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_model() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


def _nvidia_gpu() -> str | None:
    """The first NVIDIA GPU's model from the driver's ``/proc`` files (no CUDA context made)."""
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return None


@functools.cache
def machine() -> str:
    """Where this process runs, in one line: CPU model, core count and NVIDIA GPU if any.

    Every evaluated episode records it, so a run resumed or grown on another machine (this
    CPU, then the GPU box) says where each of its episodes and timings came from. The GPU
    matters even for a CPU policy: it renders the camera images (NVIDIA EGL, not Mesa).
    """
    gpu = _nvidia_gpu()
    return f"{_cpu_model()} x{os.cpu_count()}" + (f", {gpu}" if gpu else "")


def provenance(**extra: Any) -> dict[str, Any]:
    """Describe where and how a result was produced.

    Args:
        **extra: Additional fields recorded verbatim (e.g. ``device="cpu"``).

    Returns:
        A JSON-serialisable dict with the command, git SHA, package versions, CPU/GPU model
        and torch thread count.
    """
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    threads = None
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        pass
    record = {
        "command": " ".join(["robodecode" if sys.argv[0].endswith("robodecode") else sys.argv[0],
                             *sys.argv[1:]]),
        "git_sha": _git_sha(),
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": versions,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu_model(),
        "torch_threads": threads,
    }
    record.update(extra)
    return record
