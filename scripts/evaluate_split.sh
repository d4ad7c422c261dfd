#!/usr/bin/env bash
# DKPNet's evaluation on a named split (docs/MODEL.md, "Validation and test"):
#   val  - choosing weights, recipes and extraction settings: Oxford graf + trees, synthetic
#          pairs from BSDS500 val photos 0-49, rotation / zoom curves on those photos, KITTI06
#   test - reporting, once: Oxford bikes, boat, leuven, wall; BSDS500 val photos 50-99 (pairs
#          and curves); KITTI07 frames 0-159; the Strecha pose pairs
#   SPLIT=val bash scripts/evaluate_split.sh            (after `make setup`)
# Environment: SPLIT (val | test), DATA (../shared/data), OUT (outputs/eval_$SPLIT), WEIGHTS
# (DKPNet weights; default the shipped ones), METHODS (default dkp), KP (1000), DKP (the
# command; default .venv/bin/dkp-slam), SKIP (space-separated parts to leave out: oxford bsds
# robustness odometry pose), and any further `--set` for every run in SETS (one per word).
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=${SPLIT:-val}
DATA=${DATA:-../shared/data}
OUT=${OUT:-outputs/eval_$SPLIT}
METHODS=${METHODS:-dkp}
KP=${KP:-1000}
DKP=${DKP:-.venv/bin/dkp-slam}
SKIP=" ${SKIP:-} "
SET=()
if [ -n "${WEIGHTS:-}" ]; then SET=(--set "detector.dkp.weights=$WEIGHTS"); fi
for s in ${SETS:-}; do SET+=(--set "$s"); done
case "$SPLIT" in
  val)  SCENES=graf,trees; PHOTOS=0:50; SEED=0; SEQ=kitti06_0000-0049 ;;
  test) SCENES=bikes,boat,leuven,wall; PHOTOS=50:100; SEED=1; SEQ=kitti07_0000-0159 ;;
  *) echo "evaluate_split: SPLIT must be val or test, got '$SPLIT'" >&2; exit 2 ;;
esac
common=(--methods "$METHODS" --max-keypoints "$KP" --output "$OUT" --no-progress "${SET[@]}")
start=$(date +%s)
if [[ $SKIP != *" oxford "* ]]; then
  echo "== $SPLIT: Oxford $SCENES, longer side <= 640 px"
  $DKP bench homography "$DATA/homography/oxford" --scenes "$SCENES" --resize-max 640 "${common[@]}"
fi
if [[ $SKIP != *" bsds "* ]]; then
  echo "== $SPLIT: 50 synthetic pairs from BSDS500 val photos $PHOTOS (seed $SEED)"
  $DKP bench homography "$DATA/train/bsds500/val" --photos "$PHOTOS" --pairs 50 --seed "$SEED" \
    "${common[@]}"
fi
if [[ $SKIP != *" robustness "* ]]; then
  echo "== $SPLIT: rotation and zoom curves, 20 BSDS500 val photos of $PHOTOS"
  $DKP bench robustness "$DATA/train/bsds500/val" --photos "$PHOTOS" --num-photos 20 \
    "${common[@]}"
fi
if [[ $SKIP != *" odometry "* ]]; then
  echo "== $SPLIT: odometry on $SEQ, consecutive frames"
  $DKP bench odometry "$DATA/sequences/$SEQ" "${common[@]}"
fi
if [[ $SPLIT == test && $SKIP != *" pose "* ]]; then
  echo "== $SPLIT: relative pose on the Strecha pairs"
  $DKP bench pose "$DATA/pairs/strecha/pairs_with_gt.txt" "${common[@]}"
fi
echo "== total $(( $(date +%s) - start )) s; results in $OUT"
