#!/usr/bin/env bash
# The full benchmark behind docs/BENCHMARKS.md: every method on the same data in one run.
#   bash scripts/run_benchmarks.sh            (after `make setup`; ../shared/data beside the repo)
# Environment: DATA (default ../shared/data), OUT (default outputs/bench), METHODS, KP.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-outputs/bench}
METHODS=${METHODS:-orb,sift,akaze,aliked-t16,aliked-n16,disk,xfeat}
KP=${KP:-1000}
DKP=${DKP:-.venv/bin/dkp-slam}
start=$(date +%s)
echo "== homography: Oxford (6 scenes, 30 pairs)"
$DKP bench homography "$DATA/homography/oxford" --methods "$METHODS" --max-keypoints "$KP" \
  --output "$OUT" --no-progress
echo "== homography: synthetic pairs from BSDS500 val"
$DKP bench homography "$DATA/train/bsds500/val" --pairs 100 --seed 0 --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== odometry: KITTI07 frames 0-159, consecutive frames"
$DKP bench odometry "$DATA/sequences/kitti07_0000-0159" --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== speed: KITTI07 frames at 640x480 and native 1226x370, CPU"
$DKP bench speed "$DATA/sequences/kitti07_0000-0159" --methods "$METHODS" --max-keypoints "$KP" \
  --sizes 640x480,native --frames 30 --output "$OUT"
echo "== total $(( $(date +%s) - start )) s; results in $OUT"
