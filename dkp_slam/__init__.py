"""dkp_slam: a real-time visual-odometry / SLAM front-end.

The core (everything outside :mod:`dkp_slam.ros`) is pure Python over numpy, OpenCV and
PyTorch and never imports ROS.
"""

__version__ = "0.1.0"
