#!/usr/bin/env bash
# Create a TPU VM (or pod slice), install jssl on every worker, launch one pretraining
# command on all workers, follow worker 0's log, and delete the slice.
#
#   tpu/tpu.sh create --name jssl-v4 --zone us-central2-b --type v4-8
#   tpu/tpu.sh setup  --name jssl-v4 --zone us-central2-b [--repo https://github.com/ORG/jssl.git] [--ref main]
#   tpu/tpu.sh launch --name jssl-v4 --zone us-central2-b --config configs/simclr_imagenet_r50.py \
#       --workdir /gcs/BUCKET/runs/r50 -- --config.data.dir=gs://BUCKET/tfds
#   tpu/tpu.sh logs   --name jssl-v4 --zone us-central2-b
#   tpu/tpu.sh delete --name jssl-v4 --zone us-central2-b
#
# Every subcommand takes --dry-run (print the gcloud commands instead of running them)
# and --project P. See tpu/README.md.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

[ $# -ge 1 ] || usage
command=$1; shift
name="" zone="" type="v4-8" version="tpu-ubuntu2204-base" project="" repo="https://github.com/ORG/jssl.git"
ref="main" config="" workdir="" dry_run=0 spot=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --type) type=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --spot) spot=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage 0 ;;
    *) echo "tpu.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$name" ] || { echo "tpu.sh: --name is required" >&2; exit 2; }
[ -n "$zone" ] || { echo "tpu.sh: --zone is required" >&2; exit 2; }

global=(--zone "$zone")
[ -n "$project" ] && global+=(--project "$project")

run() {
  if [ "$dry_run" = 1 ]; then
    printf '%q ' "$@"; printf '\n'
  else
    "$@"
  fi
}

on_all_workers() {
  run gcloud compute tpus tpu-vm ssh "$name" "${global[@]}" --worker=all --command "$1"
}

case "$command" in
  create)
    flags=(--accelerator-type "$type" --version "$version")
    [ "$spot" = 1 ] && flags+=(--spot)
    run gcloud compute tpus tpu-vm create "$name" "${global[@]}" "${flags[@]}"
    ;;
  setup)
    on_all_workers "set -e; sudo apt-get update -qq && sudo apt-get install -y -qq python3.11-venv git make; \
[ -d jssl ] || git clone $(printf '%q' "$repo") jssl; cd jssl && git fetch -q && git checkout -q $(printf '%q' "$ref"); \
make setup PYTHON=python3.11 && .venv/bin/pip install -q 'jax[tpu]==0.10.2'"
    ;;
  launch)
    [ -n "$config" ] || { echo "tpu.sh launch: --config is required" >&2; exit 2; }
    [ -n "$workdir" ] || { echo "tpu.sh launch: --workdir is required (shared by all workers)" >&2; exit 2; }
    quoted_extra=""
    for arg in "${extra[@]+"${extra[@]}"}"; do quoted_extra+=" $(printf '%q' "$arg")"; done
    # JSSL_AUTO_DISTRIBUTED: every worker calls jax.distributed.initialize(), which finds
    # the slice's coordinator itself. nohup: the run outlives the ssh session.
    on_all_workers "cd jssl && JSSL_AUTO_DISTRIBUTED=1 nohup .venv/bin/jssl pretrain \
--config $(printf '%q' "$config") --workdir $(printf '%q' "$workdir")$quoted_extra > jssl.log 2>&1 &"
    ;;
  logs)
    run gcloud compute tpus tpu-vm ssh "$name" "${global[@]}" --worker=0 --command "tail -f jssl/jssl.log"
    ;;
  stop)
    # SIGTERM: every worker finishes its step, saves, and exits 0; relaunch to resume.
    on_all_workers "pkill -TERM -f 'jssl pretrain' || true"
    ;;
  delete)
    run gcloud compute tpus tpu-vm delete "$name" "${global[@]}" --quiet
    ;;
  *)
    echo "tpu.sh: unknown command $command (create|setup|launch|logs|stop|delete)" >&2; exit 2 ;;
esac
