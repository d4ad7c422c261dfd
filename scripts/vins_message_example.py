#!/usr/bin/env python3
"""One frame's ``~/vins_features`` message, built by the node's own conversion and read back
field by field the way VINS-Mono's estimator reads it (docs/ROS.md, "Feeding a back-end").

    python scripts/vins_message_example.py [SEQUENCE] [--frame 1] [--rows 5]

Runs the front-end (default settings) on frames 0..FRAME of the sequence (default KITTI07),
converts the last frame with ``dkp_slam.ros.conversions.vins_features_msg`` (needs the ROS 2
message packages) and prints a Markdown table of its first ROWS features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkp_slam.config import FrontEndConfig  # noqa: E402
from dkp_slam.datasets import open_sequence  # noqa: E402
from dkp_slam.frontend import FrontEnd  # noqa: E402
from dkp_slam.messages.vins import VinsFeatureTracks, decode_vins_features  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence", nargs="?",
                        default=str(ROOT.parent / "shared/data/sequences/kitti07_0000-0159"))
    parser.add_argument("--frame", type=int, default=1)
    parser.add_argument("--rows", type=int, default=5)
    args = parser.parse_args()
    from std_msgs.msg import Header

    from dkp_slam.ros.conversions import vins_features_msg

    seq = open_sequence(args.sequence)
    fe, tracks = FrontEnd(FrontEndConfig(), seq.camera), VinsFeatureTracks()
    for i in range(args.frame + 1):
        result = fe.process(seq.load_image(i), float(seq.stamps[i]))
        features = tracks.update(result)
    msg = vins_features_msg(features, Header(frame_id="camera_optical_frame"))
    seen = decode_vins_features(msg.points, msg.channels)
    print(f"{seq.name} frame {args.frame} (stamp {result.stamp:.6f} s, {result.status.value}): "
          f"{len(result.keypoints)} keypoints, {len(msg.points)} features in the message "
          f"(tracked in >= 2 frames); channels {[c.name for c in msg.channels]}\n")
    print("| i | points[i].x | points[i].y | points[i].z | channels[0] (id) | feature_id | "
          "camera_id | channels[1] (u) | channels[2] (v) | channels[3] (velocity_x) | "
          "channels[4] (velocity_y) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, o in enumerate(seen[:args.rows]):
        p = msg.points[i]
        print(f"| {i} | {p.x:.6f} | {p.y:.6f} | {p.z:g} | {msg.channels[0].values[i]:g} | "
              f"{o.feature_id} | {o.camera_id} | {o.p_u:.3f} | {o.p_v:.3f} | "
              f"{o.velocity_x:.5f} | {o.velocity_y:.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
