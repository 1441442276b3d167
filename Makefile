# robodecode: two commands do everything on a fresh machine.
#   make demo   create .venv, install, run the main job as a short smoke run
#   make test   create .venv, install, run the test suite (tests marked `slow` excluded)
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv mona gpu-wheels

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or run: make PY=python3 ...)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[bench,dist,dev,libero]'
	# openpi-client declares numpy<2 but works with numpy 2: install it without its pins.
	$(BIN)/pip install -q --no-deps openpi-client==0.1.2
	$(BIN)/pip install -q dm-tree msgpack pillow websockets
	@touch $(STAMP)

# MONA is the independent oracle of the LTLf engine's tests; install it when we can (root + apt).
mona:
	@command -v mona >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq mona >/dev/null 2>&1) \
	  || echo "warning: could not install mona; LTL differential tests will skip (fail under CI=true)"; }

# The main job as a short smoke run: every decoder on the shipped checkpoints, 2 episodes per
# decoder and condition (~8 min on 2 cores; the committed comparison pools far more). One
# progress bar counts the finished episodes of the whole comparison (decoders x conditions x
# episodes). Writes to scratch/compare (git-ignored), never over committed results.
demo: $(STAMP)
	@echo "make demo: a short smoke run (every decoder, 2 episodes per decoder and condition," \
	  "~8 min on 2 cores); its numbers are not the committed results (experiments/results/)."
	MUJOCO_GL=egl $(BIN)/robodecode compare --episodes 2 --workers 2

test: $(STAMP) mona
	$(BIN)/ruff check .
	MUJOCO_GL=egl $(BIN)/python -m pytest -q

bench: $(STAMP)
	MUJOCO_GL=egl $(BIN)/python -m pytest -q -m slow

clean-venv:
	rm -rf $(VENV)

# Wheels for a GPU machine without network (x86-64, Python 3.12; torch there): what it lacks,
# requirements/gpu-box.txt, into .whl/ (git-ignored). README: "Running on a GPU machine ...".
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r requirements/gpu-box.txt
