#!/usr/bin/env bash
# The demo's frontier: accuracy of the demo recipe's encoder against pretraining length, for
# recipes that differ from configs/simclr_fashion_mnist_cpu.py by a few overrides. Each recipe
# pretrains once (checkpoints every EVERY steps, all kept), then `jssl eval` scores every
# checkpoint with the converged linear probe and kNN on the whole 60k/10k splits: the random-init
# and raw-pixel baselines only at the last step (they do not change with the step).
#   bash benchmarks/demo_frontier.sh [RECIPE ...]      (default: b256 b128; see `args_for`)
# Writes runs/frontier/<recipe>/ and prints one JSON line per (recipe, step): images seen,
# pretraining CPU seconds of the whole run, linear and kNN top-1. Minutes of a quiet 2-core
# machine come from the img/s measured on one (the README's demo section says which).
# A recipe whose workdir already holds a finished run is only evaluated (steps not yet scored).
set -euo pipefail
fmnist="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
jssl="${JSSL:-.venv/bin/jssl}"
root="${ROOT:-runs/frontier}"
every="${EVERY:-200}"
mkdir -p "$root"

args_for() {  # the overrides of a recipe
  case "$1" in
    b256) echo "" ;;  # the demo itself
    b128) echo "--config.train.batch_size=128" ;;  # twice the updates per image
    *) echo "unknown recipe $1" >&2; return 1 ;;
  esac
}

run() {  # recipe name
  local workdir="$root/$1" args
  args="$(args_for "$1")"
  if [ ! -f "$workdir.time" ]; then
    # shellcheck disable=SC2086  # the recipe's overrides are words
    /usr/bin/time -f '{"wall_s": %e, "cpu_s": %U, "sys_s": %S}' -o "$workdir.time" \
      "$jssl" pretrain --config configs/simclr_fashion_mnist_cpu.py --workdir "$workdir" \
      --config.data.dir="$fmnist" --config.train.checkpoint_every_steps="$every" \
      --config.train.keep_checkpoints=100 $args > "$workdir.log" 2>&1
  fi
  local last
  last="$(find "$workdir/checkpoints" -maxdepth 1 -name '[0-9]*' -printf '%f\n' | sort -n | tail -1)"
  for step in $(find "$workdir/checkpoints" -maxdepth 1 -name '[0-9]*' -printf '%f\n' | sort -n); do
    [ -f "$workdir/eval_$step.json" ] && continue
    local baselines=False
    [ "$step" = "$last" ] && baselines=True
    "$jssl" eval --workdir "$workdir" --step "$step" --config.data.dir="$fmnist" \
      --config.eval.baselines="$baselines" --config.eval.pictures="$baselines" > "$workdir/eval_$step.txt"
    cp "$workdir/eval.json" "$workdir/eval_$step.json"
  done
  python3 - "$workdir" <<'PY'
import json, pathlib, sys
workdir = pathlib.Path(sys.argv[1])
config = json.loads((workdir / "config.json").read_text())
timing = json.loads((workdir.parent / f"{workdir.name}.time").read_text().strip().splitlines()[-1])
for path in sorted(workdir.glob("eval_*.json"), key=lambda p: int(p.stem.split("_")[1])):
  r = json.loads(path.read_text())
  print(json.dumps({"recipe": workdir.name, "step": r["step"], "images": r["step"] * config["train"]["batch_size"],
                    "run_cpu_s": round(timing["cpu_s"] + timing["sys_s"]), "eval_s": r["eval_seconds"],
                    **{k: round(v, 4) for k, v in r.items() if k.endswith("top1") and "val" not in k and "train" not in k}}))
PY
}

recipes=("$@")
[ ${#recipes[@]} -eq 0 ] && recipes=(b256 b128)
for recipe in "${recipes[@]}"; do run "$recipe"; done
