#!/usr/bin/env bash
# The ROS user's path, in the distribution environment (scripts/ci/dist_env.sh):
#
#   bash scripts/ci/ros_workspace.sh VENV WORKSPACE
#
# 1. rosdep: `rosdep install --from-paths src --ignore-src --simulate` for humble (ubuntu:jammy),
#    jazzy and kilted (ubuntu:noble) against the offline rosdistro snapshot; every key of
#    package.xml must resolve (outputs kept in WORKSPACE/rosdep-<distro>.txt).
# 2. colcon build --symlink-install, then colcon test of the tests that use the installed
#    package (executables in lib/dkp_slam, share files from the ament index, the shutdown checks).
# 3. colcon build (a copying install), then colcon test: the whole test suite against it.
# Test failures fail the script (--return-code-on-test-failure); pytest's output is shown.
set -euo pipefail
VENV=$(cd "${1:?usage: ros_workspace.sh VENV WORKSPACE}" && pwd)
WS=${2:?usage: ros_workspace.sh VENV WORKSPACE}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$WS/src"
WS=$(cd "$WS" && pwd)
ln -sfn "$ROOT" "$WS/src/dkp_slam"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# shellcheck disable=SC1091
source "$VENV/share/ros-kit/env.sh"
cd "$WS"

echo "== rosdep (offline rosdistro snapshot)"
n_keys=$(env -u AMENT_PREFIX_PATH rosdep keys --from-paths src --ignore-src | wc -w)
for target in "humble ubuntu:jammy" "jazzy ubuntu:noble" "kilted ubuntu:noble"; do
  read -r distro os <<< "$target"
  out=$WS/rosdep-$distro.txt
  env -u AMENT_PREFIX_PATH rosdep install --from-paths src --ignore-src --simulate --reinstall \
    -y --rosdistro "$distro" --os "$os" > "$out" 2>&1 || { cat "$out"; exit 1; }
  resolved=$(grep -c "apt-get install" "$out" || true)
  echo "rosdep $distro ($os): $resolved of $n_keys keys resolved to apt packages"
  [ "$resolved" -eq "$n_keys" ] || { cat "$out"; exit 1; }
done

export DKP_SLAM_TEST_INSTALL=colcon  # test/installed.py: fail rather than test a pip install
INSTALLED_TESTS=(test/test_package.py test/test_ros_launch.py test/test_ros_subprocess.py
                 test/test_ros_shutdown.py test/test_launch_frontend.py)
colcon_test() {  # $1: build base, $2: install base, rest: pytest arguments
  local build=$1 install=$2
  shift 2
  set +u
  # shellcheck disable=SC1090
  source "$install/setup.bash"
  set -u
  local args=()
  [ $# -eq 0 ] || args=(--pytest-args "$@")
  python -m colcon test --build-base "$build" --install-base "$install" \
    --event-handlers console_direct+ --return-code-on-test-failure "${args[@]}"
  python -m colcon test-result --test-result-base "$build" --verbose
}

echo "== colcon build --symlink-install"
python -m colcon build --symlink-install --build-base build-symlink --install-base install-symlink
(colcon_test build-symlink install-symlink "${INSTALLED_TESTS[@]}")

echo "== colcon build"
python -m colcon build --build-base build --install-base install
(colcon_test build install)
