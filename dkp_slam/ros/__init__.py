"""The ROS 2 layer of dkp_slam: a thin node over the pure-Python core.

Modules:

- :mod:`~dkp_slam.ros.pointcloud`: the feature ``PointCloud2`` layout, encoder and decoder
  (numpy only; consumers decode without importing ROS).
- :mod:`~dkp_slam.ros.interface`: topic names, the node's own parameters, parameter specs and
  validation (no ROS imports).
- :mod:`~dkp_slam.ros.runtime`: the newest-frame mailbox, statistics and odometry covariance
  chaining behind the node's worker thread (no ROS imports).
- :mod:`~dkp_slam.ros.decode`: image / CameraInfo / stamp / pose decoders that read message
  fields only (no ROS imports; shared with the bag tools in :mod:`dkp_slam.bags`).
- :mod:`~dkp_slam.ros.conversions`: ROS messages <-> numpy / core types (needs the message
  packages).
- :mod:`~dkp_slam.ros.node`: ``frontend_node`` (needs rclpy).

Importing this package imports no ROS module; only ``conversions`` and ``node`` do.
"""
