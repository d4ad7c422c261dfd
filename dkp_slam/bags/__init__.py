"""ROS bag tools: offline evaluation of the front-end on recorded bags, bag creation from
datasets, live replay through the node and recording of its outputs.

Modules:

- :mod:`~dkp_slam.bags.reader`: streamed reading of rosbag2 (sqlite3 ``.db3``, ``.mcap``) and
  ROS 1 ``.bag`` files with ``rosbags``; topic detection; pose tracks (ground truth, node
  outputs) from PoseStamped / PoseWithCovarianceStamped / Odometry / TF.
- :mod:`~dkp_slam.bags.writer`: ``rosbags`` message builders and bag writers;
  ``dkp-slam make-bag`` (datasets -> bags).
- :mod:`~dkp_slam.bags.eval`: ``dkp-slam bag-eval``: a bag's image topic as a
  :class:`~dkp_slam.sequence.FrameSource` for :func:`dkp_slam.runner.run_sequence`, and the
  scoring of a bag recorded from the node.
- :mod:`~dkp_slam.bags.report`: the Markdown report with plots.
- :mod:`~dkp_slam.bags.play`, :mod:`~dkp_slam.bags.record`: ``dkp-slam bag-play`` and
  ``dkp-slam bag-record`` over ROS 2 (the only modules here that import rclpy).

Bags are always streamed message by message: memory does not grow with the bag size.
"""
