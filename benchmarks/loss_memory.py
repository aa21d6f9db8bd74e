"""Per-device temporary memory of the NT-Xent loss-and-gradient, dense vs chunked.

Compiles (does not run) ``grad(loss)`` for global batches sharded over forced CPU
devices and reads XLA's memory analysis. Prints one JSON object per line, the last
line a summary.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/loss_memory.py
  python benchmarks/loss_memory.py --smoke   # tiny sizes, for the test suite
"""

import argparse
import json
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax
import jax.numpy as jnp

from jssl import parallel
from jssl.losses import ntxent, ntxent_chunked


def temp_bytes(loss, batch: int, dim: int, layout, **kwargs) -> int:
  spec = jax.ShapeDtypeStruct((batch, dim), jnp.float32, sharding=parallel.batch_sharding(layout))
  fn = jax.jit(jax.grad(lambda a, b: loss(a, b, temperature=0.1, **kwargs), argnums=(0, 1)))
  return fn.lower(spec, spec).compile().memory_analysis().temp_size_in_bytes


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--block", type=int, default=1024)
  parser.add_argument("--smoke", action="store_true")
  args = parser.parse_args()
  if args.smoke:
    args.batches, args.block = [256, 512], 64
  mesh = parallel.make_mesh()
  rows = []
  for batch in args.batches:
    row = {
      "global_batch": batch,
      "devices": mesh.devices.size,
      "dim": args.dim,
      "block": args.block,
      "dense_temp_mib": temp_bytes(ntxent, batch, args.dim, mesh) / 2**20,
      "chunked_temp_mib": temp_bytes(ntxent_chunked, batch, args.dim, mesh, block_size=args.block, mesh=mesh) / 2**20,
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
  growth = {k: rows[-1][k] / rows[0][k] for k in ("dense_temp_mib", "chunked_temp_mib")}
  print(
    json.dumps(
      {
        "batch_growth": args.batches[-1] / args.batches[0],
        "dense_memory_growth": growth["dense_temp_mib"],
        "chunked_memory_growth": growth["chunked_temp_mib"],
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
      }
    )
  )


if __name__ == "__main__":
  main()
