#!/usr/bin/env bash
# The accelerator run of issue 5, prepared to fit a short device lease: the SimCLR step
# of ResNet-50 at 224 px in bfloat16 (batches 256 and 512 per device) and ResNet-18
# CIFAR at 32 px, then the input pipeline with both augmentation modes. One JSON line
# per run is appended to ${OUT:-.}/accelerator.jsonl; copy the figures into
# benchmarks/README.md with the date and the accelerator's name.
#
#   bash benchmarks/accelerator.sh            # needs a jax with GPU/TPU support installed
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT_FILE=${OUT:-.}/accelerator.jsonl
DEVICES=$("$PY" -c 'import jax; print(jax.device_count())')

run() { "$PY" benchmarks/step_throughput.py "$@" | tail -1 | tee -a "$OUT_FILE"; }

for per_device in 256 512; do
  run --model resnet50 --image-size 224 --dtype bfloat16 --batch $((per_device * DEVICES)) --steps 10 --warmup 3
done
run --model resnet50 --image-size 224 --dtype bfloat16 --batch $((256 * DEVICES)) --steps 10 --warmup 3 --augment-on device
run --model resnet18 --image-size 32 --dtype bfloat16 --batch $((512 * DEVICES)) --steps 20 --warmup 3
run --model resnet18 --image-size 32 --dtype float32 --batch $((512 * DEVICES)) --steps 20 --warmup 3
"$PY" benchmarks/input_pipeline.py --batch 256 | tail -1 | tee -a "$OUT_FILE"
