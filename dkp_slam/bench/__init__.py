"""Benchmarks: homography pairs (HPatches layout, synthetic), detector/descriptor metrics,
odometry and speed."""
