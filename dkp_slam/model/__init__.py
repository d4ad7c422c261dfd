"""The learned keypoint network (:mod:`dkp_slam.model.dkpnet`) and its weight files."""

from .dkpnet import DKPNet, count_parameters, default_conf, extract_keypoints, sample_descriptors

__all__ = ["DKPNet", "count_parameters", "default_conf", "extract_keypoints", "sample_descriptors"]
