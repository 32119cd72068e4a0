# Two entry points: `make demo` (the reference study) and `make test` (the test suite).
# Both create .venv and install what they need. Torch is installed first, pinned to the CPU
# build (override TORCH_SPEC / TORCH_PIP_ARGS for another build, e.g. a CUDA one).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DEMO_OUT ?= runs/reference

# Use the shared MNIST copy beside the repository when there is one (developers and CI).
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin PRUNEKIT_DATA), undefined)
ifneq ($(wildcard $(SHARED_MNIST)/*),)
export PRUNEKIT_DATA := $(SHARED_MNIST)
endif
endif

.PHONY: demo test install clean bench-recovery

demo: $(VENV)/.installed
	$(VENV)/bin/prunekit sweep --model mlp --methods weight,unit --out $(DEMO_OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadgroup

install: $(VENV)/.installed

# The recovery benchmark (issue 4): every schedule x weight,unit x the 13 reference sparsities.
bench-recovery: $(VENV)/.installed
	PRUNEKIT=$(VENV)/bin/prunekit PYTHON=$(PY) scripts/bench_recovery.sh runs/recovery --quiet

$(VENV)/.installed: pyproject.toml setup.py src/prunekit/kernels/_sparse.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,onnx]"
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
