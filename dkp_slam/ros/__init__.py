"""The ROS 2 layer of dkp_slam: a thin node over the pure-Python core. Every module here imports
ROS; what the node shares with ROS-free tools lives outside this package:
:mod:`dkp_slam.interface` (topic names, the node's parameters, validation),
:mod:`dkp_slam.runtime` (frame mailbox, statistics), :mod:`dkp_slam.odometry`
(odometry and covariance chaining), :mod:`dkp_slam.messages` (message field decoders and the
features cloud layout) and :mod:`dkp_slam.records` (the ``~/status`` record).

Modules:

- :mod:`~dkp_slam.ros.conversions`: ROS messages <-> numpy / core types (needs the message
  packages).
- :mod:`~dkp_slam.ros.node`: ``frontend_node`` (needs rclpy).
"""
