# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run the demo on the generated corridor sequence
#   make test   - create .venv, install (with the ROS 2 PyPI wheels), run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch pinned to the builds this project is tested with (CPU works; CUDA used when present).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[ros,dev]"
	touch $@

demo: setup
	$(VENV)/bin/dkp-slam demo --output outputs/demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) scripts/bench_backend.py

clean:
	rm -rf $(VENV) outputs build *.egg-info
