#!/usr/bin/env bash
# The accelerator run of issue 5, prepared to fit a short device lease: the SimCLR step
# of ResNet-50 at 224 px in bfloat16 (batches 256 and 512 per device) and ResNet-18
# CIFAR at 32 px, then the input pipeline with both augmentation modes. One JSON line
# per run is appended to ${OUT:-.}/accelerator.jsonl; copy the figures into
# benchmarks/README.md with the date and the accelerator's name.
#
#   bash benchmarks/accelerator.sh            # needs a jax with GPU/TPU support installed
#   PY=python3 bash benchmarks/accelerator.sh # another interpreter (jssl on its PYTHONPATH)
#
# The step benchmarks need no TensorFlow (jssl imports it at first use, for data only); the
# input-pipeline run is skipped, with a line saying so, where TensorFlow is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${PY:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT_FILE=${OUT:-.}/accelerator.jsonl
DEVICES=$("$PY" -c 'import jax; print(jax.device_count())')

# Peak FLOP/s from an 8192-sided matrix product (4096 leaves an H100/H200 well below its
# rate); a failed run (out of memory, say) is reported and the others still run.
run() {
  "$PY" benchmarks/step_throughput.py --peak-size 8192 "$@" | tail -1 | tee -a "$OUT_FILE" ||
    echo "step_throughput $* failed" >&2
}

for per_device in 256 512; do
  run --model resnet50 --image-size 224 --dtype bfloat16 --batch $((per_device * DEVICES)) --steps 10 --warmup 3
done
run --model resnet50 --image-size 224 --dtype bfloat16 --batch $((256 * DEVICES)) --steps 10 --warmup 3 --augment-on device
run --model resnet18 --image-size 32 --dtype bfloat16 --batch $((512 * DEVICES)) --steps 20 --warmup 3
run --model resnet18 --image-size 32 --dtype float32 --batch $((512 * DEVICES)) --steps 20 --warmup 3
if "$PY" -c 'import tensorflow' 2>/dev/null; then
  "$PY" benchmarks/input_pipeline.py --batch 256 | tail -1 | tee -a "$OUT_FILE"
else
  echo "input pipeline not measured: TensorFlow is not installed for $PY" >&2
fi
