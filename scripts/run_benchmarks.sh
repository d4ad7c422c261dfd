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
# Sized to finish in under 20 minutes on the 2-core development machine with all seven methods
# (DISK alone takes about half of it: ~2.6 s per 1226x370 frame). LONG=1 runs all 160 KITTI
# frames, 100 synthetic pairs and native-size Oxford images instead (about 30 minutes).
if [ "${LONG:-0}" = 1 ]; then RESIZE=0; PAIRS=100; FRAMES=0; TIMED=30;
else RESIZE=640; PAIRS=30; FRAMES=100; TIMED=8; fi
echo "== homography: Oxford (6 scenes, 30 pairs), longer side <= $RESIZE px (0 = native)"
$DKP bench homography "$DATA/homography/oxford" --resize-max "$RESIZE" --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== homography: $PAIRS synthetic pairs from BSDS500 val"
$DKP bench homography "$DATA/train/bsds500/val" --pairs "$PAIRS" --seed 0 --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== odometry: KITTI07, consecutive frames (max frames $FRAMES, 0 = all 160)"
$DKP bench odometry "$DATA/sequences/kitti07_0000-0159" --max-frames "$FRAMES" \
  --methods "$METHODS" --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== relative pose: the 32 Strecha pairs with ground truth (pose AUC)"
$DKP bench pose "$DATA/pairs/strecha/pairs_with_gt.txt" --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress
echo "== speed: KITTI07 frames at 640x480 and native 1226x370, CPU, $TIMED timed frames"
$DKP bench speed "$DATA/sequences/kitti07_0000-0159" --methods "$METHODS" --max-keypoints "$KP" \
  --sizes 640x480,native --frames "$TIMED" --output "$OUT"
echo "== total $(( $(date +%s) - start )) s; results in $OUT"
