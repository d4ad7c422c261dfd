#!/usr/bin/env bash
# The evaluation behind docs/MODEL.md: DKPNet (shipped weights unless WEIGHTS is set) against
# ORB, SIFT, ALIKED-t16 and XFeat in the same runs, then the ablation models (ABLATION=1).
#   bash scripts/evaluate_model.sh            (after `make setup`; ../shared/data beside the repo)
# Environment: DATA (default ../shared/data), OUT (default outputs/model_eval), WEIGHTS, KP,
# METHODS, ABLATION (1: also the runs/ablation_{base,ms,dcn,att,att_teacher}/model.pt weights), EXTRACTION
# (1: also DKPNet with 1 and 3 pyramid levels, and dkp / orb with a 1-px NMS over all keypoints).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-outputs/model_eval}
METHODS=${METHODS:-dkp,orb,sift,aliked-t16,xfeat}
KP=${KP:-1000}
DKP=${DKP:-.venv/bin/dkp-slam}
SET=()
if [ -n "${WEIGHTS:-}" ]; then SET=(--set "detector.dkp.weights=$WEIGHTS"); fi
start=$(date +%s)
echo "== homography: Oxford (6 scenes, 30 pairs), longer side <= 640 px"
$DKP bench homography "$DATA/homography/oxford" --resize-max 640 --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress "${SET[@]}"
echo "== homography: 30 synthetic pairs from BSDS500 val"
$DKP bench homography "$DATA/train/bsds500/val" --pairs 30 --seed 0 --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress "${SET[@]}"
echo "== odometry: KITTI07 frames 0-159, consecutive frames"
$DKP bench odometry "$DATA/sequences/kitti07_0000-0159" --methods "$METHODS" \
  --max-keypoints "$KP" --output "$OUT" --no-progress "${SET[@]}"
echo "== speed: KITTI07 frames at 640x480, CPU, 30 timed frames"
$DKP bench speed "$DATA/sequences/kitti07_0000-0159" --methods dkp,orb --max-keypoints "$KP" \
  --sizes 640x480 --frames 30 --output "$OUT" "${SET[@]}"
if [ "${ABLATION:-0}" = 1 ]; then
  for v in base ms dcn att att_teacher; do
    echo "== ablation $v"
    for data in "$DATA/homography/oxford --resize-max 640" "$DATA/train/bsds500/val --pairs 30 --seed 0"; do
      # shellcheck disable=SC2086
      $DKP bench homography $data --methods dkp --max-keypoints "$KP" --no-progress \
        --output "$OUT/ablation_$v" --set "detector.dkp.weights=runs/ablation_$v/model.pt"
    done
  done
fi
if [ "${EXTRACTION:-0}" = 1 ]; then
  for variant in "n_levels1 dkp detector.dkp.n_levels=1" "n_levels3 dkp detector.dkp.n_levels=3" \
                 "nms1 dkp,orb detector.nms_radius=1"; do
    read -r name methods setting <<< "$variant"
    echo "== extraction variant $name: $methods with $setting"
    for data in "$DATA/homography/oxford --resize-max 640" "$DATA/train/bsds500/val --pairs 30 --seed 0"; do
      # shellcheck disable=SC2086
      $DKP bench homography $data --methods "$methods" --max-keypoints "$KP" --no-progress \
        --output "$OUT/extraction_$name" --set "$setting" "${SET[@]}"
    done
  done
  $DKP bench odometry "$DATA/sequences/kitti07_0000-0159" --methods dkp --max-keypoints "$KP" \
    --output "$OUT/extraction_n_levels1" --no-progress --set detector.dkp.n_levels=1 "${SET[@]}"
fi
echo "== total $(( $(date +%s) - start )) s; results in $OUT"
