#!/usr/bin/env bash
# The README's "Use in a ROS 2 workspace" steps, verbatim, in a fresh ROS 2 container:
#
#   docker run --rm -v "$PWD":/src/dkp_slam:ro [-v /path/to/shared/data:/ws/src/shared/data:ro] \
#       ros:humble bash /src/dkp_slam/scripts/ros_ubuntu_check.sh        # or ros:jazzy, ros:kilted
#
# Ends with the colcon test summary. The official ros:<distro> images are Ubuntu 22.04 (humble)
# or 24.04 (jazzy, kilted) with ROS 2 and an initialised rosdep. Tests that need the project's
# shared data skip, saying so, unless it is mounted as above.
#
# NOT RUN by the project: its machines have no Docker engine (docs/ROS.md, "What was verified
# where"); CI runs the same steps in a Debian venv with the distribution's packages instead.
set -euo pipefail
: "${ROS_DISTRO:?run inside a ros:<distro> image}"
set +u; source "/opt/ros/$ROS_DISTRO/setup.bash"; set -u
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3-venv python3-pip python3-colcon-common-extensions python3-rosdep
mkdir -p /ws/src/dkp_slam
tar -C /src/dkp_slam --exclude=./.venv --exclude=./.venv-dist --exclude=./build \
    --exclude=./outputs -cf - . | tar -C /ws/src/dkp_slam -xf -
cd /ws
rosdep update --rosdistro "$ROS_DISTRO"
rosdep install --from-paths src --ignore-src -y --rosdistro "$ROS_DISTRO"
python3 -m venv --system-site-packages venv
touch venv/COLCON_IGNORE
# keep the apt numpy: pip must not replace it (apt's cv2 is built against numpy 1.x)
python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > venv/keep-apt-numpy.txt
venv/bin/pip install -q -c venv/keep-apt-numpy.txt "setuptools<80" torch torchvision \
    "onnxruntime>=1.31" onnx onnxscript rosbags evo
set +u; source venv/bin/activate; set -u
python -m colcon build --symlink-install
set +u; source install/setup.bash; set -u
python -m colcon test --event-handlers console_direct+ --return-code-on-test-failure
python -m colcon test-result --verbose
ros2 pkg executables dkp_slam
