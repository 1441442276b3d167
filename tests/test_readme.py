"""Every ``python`` and ``bash`` block of README.md runs, in order, as one shell session.

Python blocks run as ``python - <<EOF`` inside the session, so a server started in the
background by one block serves the next. ``console`` blocks are shown, not run (``make test``,
hour-long comparisons). The quickstart writes under ``scratch/quickstart`` (git-ignored) and is
removed first, so each run starts from nothing.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
RUN = ("python", "bash")


def _blocks() -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every fenced block of the README."""
    text = (ROOT / "README.md").read_text()
    return [(m[1], m[2], text[:m.start()].count("\n") + 1) for m in BLOCK.finditer(text)]


def _script(blocks: list[tuple[str, str, int]]) -> str:
    """One bash script running the blocks, each announced so a failure names its line."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT", f"cd {ROOT}"]
    for lang, code, line in blocks:
        parts.append(f"echo '### README block at line {line} ({lang})'")
        if lang == "python":
            parts.append(f"{sys.executable} - <<'README_PY'\n{code}README_PY")
        else:
            parts.append(code)
    parts.append("echo '### README done'")
    return "\n".join(parts) + "\n"


def test_readme_has_runnable_blocks_and_every_fence_has_a_language():
    blocks = _blocks()
    assert all(lang for lang, _, _ in blocks)
    runnable = [b for b in blocks if b[0] in RUN]
    assert sum(lang == "python" for lang, _, _ in runnable) >= 5
    assert any("robodecode collect" in code for _, code, _ in runnable)


def test_every_python_and_bash_block_of_the_readme_runs():
    shutil.rmtree(ROOT / "scratch" / "quickstart", ignore_errors=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MUJOCO_GL": "egl", "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "PYTHONUNBUFFERED": "1"}
    script = _script([b for b in _blocks() if b[0] in RUN])
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=900)
    out = proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("### README block")]
    assert proc.returncode == 0 and "### README done" in proc.stdout, (
        f"README block failed: {failed[-1] if failed else '?'}\n{out[-4000:]}")
