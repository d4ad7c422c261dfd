"""ROS message contents without ROS: decoders that read the fields of Image, CompressedImage,
CameraInfo, stamps and poses (:mod:`.decode`, used by the node on live messages and by the bag
tools on deserialised ones), and the features ``PointCloud2`` layout (:mod:`.pointcloud`,
encoder and decoder). numpy / OpenCV only: importable where ROS is not installed."""
