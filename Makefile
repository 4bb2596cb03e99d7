# Two commands do everything on a fresh machine: `make demo` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Which torch to install. With no NVIDIA driver: the CPU build (torch==2.13.0, a local wheel on the team's
# machines; a plain `torch` would pull a multi-GB CUDA build). With nvidia-smi present: PyPI's default CUDA
# build. Override explicitly, e.g. `make demo TORCH_SPEC="torch==2.13.0"`.
TORCH_SPEC ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
EXTRAS ?= notebook,hf,timeseries,test,sweep
# What `make demo` alone needs (the report's plotly, LS4's statsmodels series): a third less to install than EXTRAS,
# about 30 s of a fresh clone's demo. A full set-up (`make setup`, `make test`) covers the demo too.
DEMO_EXTRAS ?= notebook,timeseries

.PHONY: setup demo test test-all lab bench gpu-check clean

define install
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(1)]"
endef

$(BIN)/.installed: pyproject.toml
	$(call install,$(EXTRAS))
	@touch $@ $(BIN)/.installed-demo

$(BIN)/.installed-demo: pyproject.toml
	$(call install,$(DEMO_EXTRAS))
	@touch $@

setup: $(BIN)/.installed

demo: $(BIN)/.installed-demo
	$(BIN)/workbench demo

# The suite on every core (pytest-xdist, one torch thread per worker); the tests that share a trained fixture run on
# one worker (tests/conftest.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not extended"

# Everything, the `extended` checks too (each method notebook run in JupyterLab, sweep recovery on Ray): longer.
test-all: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# JupyterLab refuses to start as root (most containers) unless told: pass --allow-root then, and say so.
lab: setup
	@if [ "$$(id -u)" = "0" ]; then \
	  echo "make lab: running as root, so JupyterLab gets --allow-root"; \
	  exec $(BIN)/jupyter lab --allow-root notebooks/; \
	else exec $(BIN)/jupyter lab notebooks/; fi

bench: setup
	@for b in benchmarks/*.py; do [ "$$b" = benchmarks/test_suite.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py --project

clean:
	rm -rf $(VENV) reports .pytest_cache
