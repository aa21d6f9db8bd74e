#!/usr/bin/env bash
# The runs behind the README's reconstruction table: each task and SimCLR at the same
# steps and batch, then `jssl eval` on each. Writes runs/table/<name>/ and prints one
# JSON line per run (wall time, held-out scores, probe results).
#   bash benchmarks/reconstruction_demos.sh [FASHION_MNIST_DIR]
set -euo pipefail
fmnist="${1:-/usr/share/datasets/fashion-mnist}"
jssl="${JSSL:-.venv/bin/jssl}"
root="${ROOT:-runs/table}"
mkdir -p "$root"

run() {  # name, then pretrain arguments
  local name="$1"; shift
  local start end
  start=$(date +%s)
  "$jssl" pretrain --workdir "$root/$name" "$@"
  end=$(date +%s)
  "$jssl" eval --workdir "$root/$name" > "$root/$name/eval.txt"
  python3 - "$root/$name" "$((end - start))" <<'PY'
import json, pathlib, sys
workdir, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
last = records[-1]
summary = {"run": workdir.name, "steps": last["step"], "pretrain_seconds": seconds,
           **{k: round(v, 4) for k, v in last.items() if k.startswith("holdout_")},
           **{k: round(v, 4) for k, v in json.loads((workdir / "eval.json").read_text()).items()
              if k.endswith("top1")}}
print(json.dumps(summary))
PY
}

run superres --config configs/reconstruction_cpu.py:superres --config.data.dir="$fmnist"
run inpainting --config configs/reconstruction_cpu.py:inpainting --config.data.dir="$fmnist"
run simclr_fmnist --config configs/simclr_fashion_mnist_cpu.py --config.data.dir="$fmnist" --config.train.steps=300
run colorization --config configs/reconstruction_cpu.py:colorization
run simclr_photos --config configs/simclr_fashion_mnist_cpu.py --config.data.source=sample_photos \
  --config.data.image_size=32 --config.train.batch_size=128 --config.train.steps=300
