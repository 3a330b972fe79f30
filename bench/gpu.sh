#!/usr/bin/env bash
# The GPU check, in one call (at most about 8 minutes on an H100/H200):
#   bash bench/gpu.sh            on a machine with CUDA: figures into bench/results/ (and $OUT)
#   bash bench/gpu.sh --smoke    anywhere: every step on the CPU at toy sizes (tests run this)
#
# 1. the test suite's CUDA tests (they skip without CUDA);
# 2. `pixelwise train` of a classification and a segmentation run with device=cuda, bf16,
#    channels_last and torch.compile;
# 3. ResNet-50 training images/s at 224x224 (bf16, channels_last, compile) against the same
#    settings in a hand-written loop (bench/bench_train.py);
# 4. cifar10_fast to its final accuracy (when ../shared/data/cifar10 is there), and a
#    segmentation throughput figure (the U-Net of camvid_fast on random 360x480 images).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PIXELWISE_QUIET=1

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; EPOCHS=1; STEPS=1; REPEATS=2; SIZE=32; MODEL=resnet18; BATCH=4; COMPILE=""
  SEG_SIZE="[32, 48]"
else
  DEVICE=cuda; EPOCHS=2; STEPS=20; REPEATS=7; SIZE=224; MODEL=resnet50; BATCH=128; COMPILE="--compile"
  SEG_SIZE="[360, 480]"
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA here: use --smoke'"
  "$PY" -c "import torch; print(torch.cuda.get_device_name(0))"
fi
FAST="train.amp=bf16 train.channels_last=true train.tensorboard=false train.report=false"
[ "$SMOKE" = 0 ] && FAST="$FAST train.compile=true"

echo "== 1. CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider tests/test_metrics.py -k cuda || [ "$SMOKE" = 1 ]

echo "== 2. pixelwise train on $DEVICE (bf16, channels_last${COMPILE:+, compile})"
"$PY" -m pixelwise train digits device=$DEVICE train.epochs=$EPOCHS $FAST \
  "output_dir=$WORK/runs" --run-dir "$WORK/cls"
"$PY" -m pixelwise train digits task=segmentation data.format=digits_segmentation \
  data.num_samples=64 data.image_size="$SEG_SIZE" data.in_channels=1 data.batch_size=8 \
  model.name=unet "model.options={base_channels: 8}" train.best_metric=val/miou \
  data.augment=none device=$DEVICE train.epochs=$EPOCHS \
  $FAST "output_dir=$WORK/runs" --run-dir "$WORK/seg"

echo "== 3. $MODEL training throughput vs a hand-written loop"
"$PY" bench/bench_train.py --device $DEVICE --model $MODEL --image-size $SIZE \
  --batch-size $BATCH --steps $STEPS --repeats $REPEATS --amp bf16 --channels-last $COMPILE \
  --out "$OUT/train_gpu_${MODEL}.json"

echo "== 4. cifar10_fast to its final accuracy; segmentation throughput"
if [ "$SMOKE" = 0 ] && [ -d ../shared/data/cifar10 ]; then
  start=$(date +%s)
  "$PY" -m pixelwise train cifar10_fast device=cuda data.root=../shared/data/cifar10 \
    train.report=false "output_dir=$WORK/runs" --run-dir "$WORK/cifar"
  echo "cifar10_fast: $(( $(date +%s) - start )) s end to end"
fi
if [ "$SMOKE" = 1 ]; then SEG_ARGS="--size 64 96 --batch-size 2 --steps 1 --warmup 1"; else SEG_ARGS="--steps 20"; fi
"$PY" bench/bench_segmentation_step.py --device $DEVICE $SEG_ARGS --amp bf16 --channels-last \
  $COMPILE --out "$OUT/segmentation_step_${DEVICE}.json"
echo "== done"
