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

# One torch thread unless you say otherwise: the demo's models are a few million parameters at most, and
# the demo's timings (README, moon_rl/demo.py) were measured that way on 2 cores.
demo: $(VENV)/.installed
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/moon-rl demo $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
