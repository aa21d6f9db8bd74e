"""Throughput and MFU of the jit-compiled SimCLR train step, input pipeline excluded.

Builds jssl's real train step (``jssl.train.make_train_step``: encoder, projection head,
NT-Xent over the global batch, LARS update, online probe) for a model, image size,
global batch, dtype and device count; feeds it one synthetic batch that already lives on
the devices; and times it: compile excluded, warm-up steps excluded, each step waited
for with ``block_until_ready``, median of ``--steps``.

FLOPs per step come from the compiled step's cost analysis (``model_flops_per_step``)
and from an analytic count (``analytic_flops_per_step``: 3x the convolution and matmul
FLOPs of the forward pass, for forward, input gradient and weight gradient);
``flop_counts_disagree`` is true when they differ by more than 10%. Peak FLOP/s is
measured at start on this machine: a large matrix product in the step's dtype.
``mfu`` = analytic model FLOPs / step time / peak (``mfu_cost_analysis`` uses the other
count).

  python benchmarks/step_throughput.py --model resnet18 --image-size 32 --batch 64
  python benchmarks/step_throughput.py --model resnet50 --image-size 224 --batch 256 --dtype bfloat16
  python benchmarks/step_throughput.py --devices 8 ...   # forced CPU devices (scaling check)
  python benchmarks/step_throughput.py --smoke           # seconds; used by the test suite

The last line of stdout is one JSON object; progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument(
    "--model", default="resnet18", help="jssl encoder name (resnet_tiny, resnet18, resnet50, vit_tiny, ...)"
  )
  p.add_argument("--image-size", type=int, default=32)
  p.add_argument("--batch", type=int, default=64, help="global batch of source images (each gives two views)")
  p.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--devices", type=int, default=0, help="> 0: force this many CPU devices")
  p.add_argument("--head-hidden", type=int, default=2048)
  p.add_argument("--head-out", type=int, default=128)
  p.add_argument("--width", type=float, default=1.0, help="ResNet width multiplier")
  p.add_argument(
    "--augment-on",
    choices=("host", "device"),
    default="host",
    help="device: the step also makes the two views from raw images (jssl.data.augment_jax)",
  )
  p.add_argument("--peak-size", type=int, default=4096, help="side of the square matmul that measures peak FLOP/s")
  p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
  args = p.parse_args(argv)
  if args.smoke:
    args.model, args.image_size, args.batch, args.steps, args.warmup = "resnet_tiny", 16, 8, 2, 1
    args.head_hidden, args.head_out, args.peak_size = 64, 32, 256
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.devices > 0:
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
    ).strip()
  import jax  # noqa: PLC0415  (after XLA_FLAGS)
  from random_batch import random_batch  # noqa: PLC0415  (benchmarks/random_batch.py, beside this script)

  from jssl import flops as flops_lib  # noqa: PLC0415
  from jssl import train  # noqa: PLC0415
  from jssl.config import default_config  # noqa: PLC0415

  def say(*parts):
    print(*parts, file=sys.stderr, flush=True)

  config = default_config()
  config.data.source = "synthetic"
  config.data.synthetic_shape = (args.image_size, args.image_size, 3)
  config.data.image_size = args.image_size
  config.augment.on = args.augment_on
  config.model.encoder = args.model
  config.model.stem = "cifar" if args.image_size <= 64 else "imagenet"
  config.model.width_multiplier = args.width
  config.model.dtype = args.dtype
  config.model.head_hidden_dim, config.model.head_out_dim = args.head_hidden, args.head_out
  config.train.batch_size = args.batch
  config.train.steps = args.warmup + args.steps + 1

  setup = train.make_setup(config)
  devices = setup.mesh.devices.size
  say(
    f"{args.model} {args.image_size}px batch {args.batch} {args.dtype} on {devices} {jax.default_backend()} device(s)"
  )

  peak_per_device = flops_lib.peak_matmul_flops(args.peak_size, args.dtype)
  # Forced CPU devices share the host's cores; accelerators each bring their own peak.
  peak = peak_per_device if jax.default_backend() == "cpu" else peak_per_device * devices
  say(f"peak {peak / 1e9:.1f} GFLOP/s ({args.peak_size}^2 matmul, {args.dtype})")

  state = train.create_state(setup, seed=0)
  batch = random_batch(setup, jax.random.key(1))
  step = train.make_train_step(setup)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  # A partitioned step is one program per device: its cost analysis counts one device's share.
  hlo_flops = flops_lib.compiled_flops(compiled) * devices
  analytic = flops_lib.analytic_step_flops(setup, batch)
  say(
    f"compiled in {compile_s:.1f} s; {hlo_flops / 1e9:.2f} GFLOP/step (cost analysis), {analytic / 1e9:.2f} (analytic)"
  )

  times = []
  for i in range(args.warmup + args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i >= args.warmup:
      times.append(time.perf_counter() - start)
      say(f"step {i - args.warmup + 1}/{args.steps}: {times[-1]:.3f} s")
  step_s = statistics.median(times)

  # MFU counts the model's FLOPs, not the implementation's: XLA's cost analysis counts a
  # loop body once (the chunked CPU kernel gradient is a loop) and prices some convolution
  # gradients differently, so the analytic count is the numerator; both are reported.
  model_flops = hlo_flops if hlo_flops > 0 else analytic
  result = {
    "model": args.model,
    "image_size": args.image_size,
    "batch": args.batch,
    "dtype": args.dtype,
    "augment_on": args.augment_on,
    "devices": devices,
    "backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "jax_version": jax.__version__,
    "step_s": step_s,
    "step_s_all": times,
    "images_per_s": args.batch / step_s,
    "compile_s": compile_s,
    "model_flops_per_step": model_flops,
    "flops_source": "cost_analysis" if hlo_flops > 0 else "analytic",
    "peak_flops": peak,
    "peak_flops_per_device": peak_per_device,
    "analytic_flops_per_step": analytic,
    "mfu": analytic / step_s / peak,
    "mfu_cost_analysis": model_flops / step_s / peak,
    "loss": float(metrics["loss"]),
  }
  result["flop_counts_disagree"] = bool(hlo_flops > 0 and abs(hlo_flops - analytic) > 0.1 * analytic)
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
