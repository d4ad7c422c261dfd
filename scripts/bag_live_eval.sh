#!/usr/bin/env bash
# Replay a bag live through frontend_node and score what the node published:
#   dkp-slam bag-play BAG -> frontend_node -> dkp-slam bag-record -> dkp-slam bag-eval
#
# usage: scripts/bag_live_eval.sh BAG OUT [RATE] [-- extra bag-eval options, e.g. --gt FILE]
# env:   IMAGE (default /camera/image_raw), INFO (default /camera/camera_info),
#        PARAMS (default config/frontend.yaml), ROS_DOMAIN_ID (default 42),
#        NODE_ARGS (extra --ros-args for the node, e.g. "-p node.qos.reliability:=reliable")
# Writes OUT/recording (the node's outputs + the replayed ground truth), OUT/eval (report,
# summary.json, ...), OUT/eval.json and the logs of the three processes.
set -euo pipefail
BAG=$1
OUT=$2
RATE=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
IMAGE=${IMAGE:-/camera/image_raw}
INFO=${INFO:-/camera/camera_info}
PARAMS=${PARAMS:-config/frontend.yaml}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42}
NS=/live
mkdir -p "$OUT"
rm -rf "$OUT/recording"

# shellcheck disable=SC2086
frontend_node --ros-args --params-file "$PARAMS" -r __ns:=$NS -r image:="$IMAGE" \
    -r camera_info:="$INFO" ${NODE_ARGS:-} > "$OUT/node.log" 2>&1 &
NODE=$!
dkp-slam bag-record "$OUT/recording" --topics $NS/frontend/odometry \
    $NS/frontend/relative_pose $NS/frontend/status /ground_truth/pose /diagnostics \
    > "$OUT/record.log" 2>&1 &
REC=$!
# SIGTERM, not SIGINT: background jobs of a script ignore SIGINT
trap 'kill -TERM $REC $NODE 2>/dev/null || true' EXIT

# starts once the node and the recorder subscribe; real rate x RATE
dkp-slam bag-play "$BAG" --rate "$RATE" --wait-subscribers 180 --no-progress | tee "$OUT/play.log"
sleep 3  # the last frames' outputs
kill -TERM $REC && wait $REC || true
kill -TERM $NODE && wait $NODE || true
trap - EXIT
dkp-slam bag-eval "$OUT/recording" --output "$OUT/eval" --json "$OUT/eval.json" --no-progress "$@"
