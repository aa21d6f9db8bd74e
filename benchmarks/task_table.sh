#!/usr/bin/env bash
# The runs behind the README's table of every pretext task at one CPU budget: pretrain,
# then `jssl eval` with one probe protocol for all (probes fit on the first
# EVAL_TRAIN_EXAMPLES training images, the linear probe's L2 chosen on 10% of those,
# tested on the whole test split), then the fine-tune column: the exported encoder trained
# end to end with configs/finetune_fashion_mnist.py:full (one epoch, the same rates for every
# row; FINETUNE_RECIPE=full_vit picks another variant of that file). Rows random_resnet_tiny and random_vit_tiny fine-tune the same architectures from
# random init (they reuse the exports of the frame_order and mae rows, run those first), and
# random_resnet_tiny_photos on the photos (the simclr_photos row's export). mae_long is MAE at
# four times the table's steps (1,200), the one row over the common budget.
# Writes runs/table/<row>/ and prints one JSON line per row (wall and CPU time of the
# pretraining, held-out scores, probes, fine-tune top-1). CPU time (user + system) is the budget that stays comparable
# when other work shares the machine; wall time is what one user waits on an idle one.
#   bash benchmarks/task_table.sh [ROW ...]      (default: every row; see `rows` below)
#   FASHION_MNIST_DIR=/path bash benchmarks/task_table.sh rotation mae
# A row whose workdir already holds a finished run is only re-evaluated.
set -euo pipefail
fmnist="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
jssl="${JSSL:-.venv/bin/jssl}"
root="${ROOT:-runs/table}"
eval_train="${EVAL_TRAIN_EXAMPLES:-10000}"
mkdir -p "$root"

args_for() {  # the pretrain arguments of a row
  case "$1" in
    simclr_fmnist) echo "--config configs/simclr_fashion_mnist_cpu.py --config.data.dir=$fmnist --config.train.steps=300" ;;
    superres|inpainting) echo "--config configs/reconstruction_cpu.py:$1 --config.data.dir=$fmnist" ;;
    rotation|mae|simclr_vit|swav|deepcluster|frame_order|byol|simsiam|moco_v3|barlow_twins|vicreg|dino)
      echo "--config configs/pretext_cpu.py:$1 --config.data.dir=$fmnist" ;;
    mae_long) echo "--config configs/pretext_cpu.py:mae --config.data.dir=$fmnist --config.train.steps=1200" ;;  # 4x the budget
    colorization) echo "--config configs/reconstruction_cpu.py:colorization" ;;
    simclr_photos) echo "--config configs/simclr_fashion_mnist_cpu.py --config.data.source=sample_photos \
--config.data.image_size=32 --config.train.batch_size=128 --config.train.steps=300" ;;
    *) echo "unknown row $1" >&2; return 1 ;;
  esac
}

finetune() {  # workdir of a finished run, init (pretrained | random), fine-tune workdir
  local data=() recipe="${FINETUNE_RECIPE:-full}"  # the photo rows fine-tune on the photos they were probed on
  case "$(basename "$1")" in colorization|simclr_photos) data=(--config.data.source=sample_photos) ;; esac
  [ -f "$1/encoder/jssl_encoder.json" ] || "$jssl" export --workdir "$1" --out "$1/encoder" --overwrite > /dev/null
  [ -f "$3/eval.json" ] || "$jssl" finetune --encoder "$1/encoder" --config "configs/finetune_fashion_mnist.py:$recipe" \
    --workdir "$3" --config.finetune.init="$2" "${data[@]}" > /dev/null
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps({"finetune_top1": round(r["top1"], 4), "finetune_init": r["init"], "finetune_s": r["seconds"]}))' "$3/eval.json"
}

random_row() {  # random_resnet_tiny | random_vit_tiny: the fine-tune column of random init
  local from
  case "$1" in
    random_resnet_tiny) from="$root/frame_order" ;;
    random_vit_tiny) from="$root/mae" ;;
    random_resnet_tiny_photos) from="$root/simclr_photos" ;;
    *) echo "unknown row $1" >&2; return 1 ;;
  esac
  [ -d "$from/checkpoints" ] || { echo "$1 reuses the export of $from: run that row first" >&2; return 1; }
  finetune "$from" random "$root/$1" | sed "s/^{/{\"run\": \"$1\", /"
}

run() {  # row name
  case "$1" in random_*) random_row "$1"; return ;; esac
  local name="$1" workdir="$root/$1" args
  args="$(args_for "$name")"
  mkdir -p "$workdir"
  # A finished run only resumes and stops: keep the first measurement.
  local timing="$workdir/pretrain_time"
  [ -f "$timing" ] && timing="$workdir/pretrain_time.rerun"
  # shellcheck disable=SC2086  # the row's arguments are words
  /usr/bin/time -f '{"wall_s": %e, "cpu_s": %U, "sys_s": %S}' -o "$timing" "$jssl" pretrain --workdir "$workdir" $args
  "$jssl" eval --workdir "$workdir" --config.eval.max_train_examples="$eval_train" > "$workdir/eval.txt"
  if [ "$name" = frame_order ]; then  # the order accuracy on tuples of the test clips
    "$(dirname "$jssl")/python" benchmarks/frame_order_holdout.py "$workdir" | tail -1 > "$workdir/holdout.json"
  fi
  finetune "$workdir" pretrained "$workdir/finetune" > "$workdir/finetune.json"
  python3 - "$workdir" <<'PY'
import json, pathlib, sys
workdir = pathlib.Path(sys.argv[1])
records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
last = records[-1]
# Empty when the first pretraining process was killed (/usr/bin/time wrote nothing): no timing then.
lines = (workdir / "pretrain_time").read_text().strip().splitlines()
timing = json.loads(lines[-1]) if lines else {"wall_s": None, "cpu_s": None}
summary = {"run": workdir.name, "steps": last["step"],
           "pretrain_wall_s": None if timing["wall_s"] is None else round(timing["wall_s"]),
           "pretrain_cpu_s": None if timing["cpu_s"] is None else round(timing["cpu_s"] + timing["sys_s"]),
           **{k: round(v, 4) for k, v in last.items() if k.startswith("holdout_") or k.endswith("accuracy")},
           **{k: round(v, 4) for k, v in json.loads((workdir / "eval.json").read_text()).items()
              if k.endswith("top1") or k == "num_train"},
           **{k: v for k, v in json.loads((workdir / "eval.json").read_text()).items() if k.endswith("linear_l2")}}
summary.update(json.loads((workdir / "finetune.json").read_text()))
if (workdir / "holdout.json").exists():
    summary["holdout_order_accuracy"] = round(json.loads((workdir / "holdout.json").read_text())["order_accuracy"], 4)
print(json.dumps(summary), flush=True)
PY
}

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
  rows=(frame_order mae random_resnet_tiny random_vit_tiny simclr_fmnist byol simsiam moco_v3 barlow_twins vicreg dino
    rotation deepcluster swav superres inpainting simclr_vit colorization simclr_photos random_resnet_tiny_photos
    mae_long)
fi
for row in "${rows[@]}"; do run "$row"; done
