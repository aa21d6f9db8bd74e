"""Where a train step's time goes: per-op times from an XLA trace, grouped by model layer.

Traces two steps of jssl's SimCLR step with ``jax.profiler`` (Perfetto JSON), maps each
executed HLO op to the JAX operation it came from (``op_name`` metadata of the compiled
step's HLO), and sums times by kind: forward convolution, its input gradient, matrix
products, and the rest by fusion name. Works on CPU, where XLA's thunk runtime records
every op.

  python benchmarks/profile_step.py --model resnet18 --image-size 32 --batch 64
  python benchmarks/profile_step.py --smoke

The last line of stdout is one JSON object: seconds per step by kind, and the top ops.
"""

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile


def kind_of(op_name: str, hlo_name: str) -> str:
  backward = "transpose(" in op_name
  if "conv_general_dilated" in op_name:
    return "convolution input gradient" if backward else "convolution forward"
  if "dot_general" in op_name:
    return "matmul backward" if backward else "matmul forward"
  return "other: " + re.sub(r"\.\d+$", "", hlo_name)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="resnet18")
  p.add_argument("--image-size", type=int, default=32)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--top", type=int, default=10)
  p.add_argument("--smoke", action="store_true")
  args = p.parse_args(argv)
  if args.smoke:
    args.model, args.image_size, args.batch = "resnet_tiny", 16, 8

  import jax  # noqa: PLC0415
  from random_batch import random_batch  # noqa: PLC0415  (benchmarks/random_batch.py, beside this script)

  from jssl import train  # noqa: PLC0415
  from jssl.config import default_config  # noqa: PLC0415

  config = default_config()
  config.data.source, config.data.synthetic_shape = "synthetic", (args.image_size, args.image_size, 3)
  config.data.image_size, config.model.encoder, config.train.batch_size = args.image_size, args.model, args.batch
  config.model.stem = "cifar" if args.image_size <= 64 else "imagenet"
  config.train.steps = 10
  setup = train.make_setup(config)
  state, batch = train.create_state(setup, seed=0), random_batch(setup, jax.random.key(1))
  compiled = train.make_train_step(setup).lower(state, batch).compile()
  op_names = {
    m.group(1): m.group(2) for m in re.finditer(r"^\s*%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"", compiled.as_text(), re.M)
  }
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  steps = 2
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(steps):
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
    trace_file = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)[0]
    events = json.load(gzip.open(trace_file))["traceEvents"]

  by_kind, by_op = collections.defaultdict(float), collections.defaultdict(float)
  for event in events:
    hlo = event.get("args", {}).get("hlo_op")
    if event.get("ph") != "X" or hlo is None:
      continue
    seconds = event["dur"] / 1e6 / steps
    op_name = op_names.get(hlo, "")
    by_kind[kind_of(op_name, hlo)] += seconds
    by_op[re.sub(r"_\d+", "_N", op_name) or hlo] += seconds  # layer1_0, layer1_1 ... together
  result = {
    "model": args.model,
    "image_size": args.image_size,
    "batch": args.batch,
    "backend": jax.default_backend(),
    "op_seconds_per_step": sum(by_kind.values()),
    "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
    "top_ops": dict(sorted(by_op.items(), key=lambda kv: -kv[1])[: args.top]),
  }
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
