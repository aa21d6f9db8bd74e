"""Ahead-of-time compile of the train step for a device count you may not have.

``jssl compile-check --config C --topology v4-64`` lowers and compiles the exact train
step of config C (state, optimizer, loss, global batch sharded over every device) and
reports per-device memory, so a config that cannot fit is caught before renting the
pod. Compiling for a real TPU topology needs ``libtpu`` (``jax.experimental.topologies``),
which cannot be installed on the CPU-only machines this was built on; this version
always compiles for the same number of forced CPU devices, and the report says so. CPU memory
figures are an estimate of the sharding's effect (layouts and fusion differ on TPU),
not a TPU measurement.
"""

import json
import os
import re
import subprocess
import sys

import jax
import ml_collections

from jssl.errors import ConfigError

# Devices JAX sees per TPU name and size (v4/v5p count TensorCores in the name, 2 per chip).
_CORES_PER_DEVICE = {"v2": 1, "v3": 1, "v4": 2, "v5p": 2, "v5e": 1, "v5litepod": 1, "v6e": 1}


def devices_for_topology(topology: str) -> int:
  """``"v4-64"`` -> 32, ``"v5e-16"`` -> 16, ``"v3-8"`` -> 8."""
  match = re.fullmatch(r"(v\d+[a-z]*|v5litepod)-(\d+)", topology)
  if not match or match.group(1) not in _CORES_PER_DEVICE:
    raise ConfigError(f"Unknown TPU topology {topology!r}; expected e.g. v4-64, v5e-16, v5p-128, v3-8.")
  return max(1, int(match.group(2)) // _CORES_PER_DEVICE[match.group(1)])


def compile_train_step(config: ml_collections.ConfigDict, *, devices: int) -> dict:
  """Compiles ``config``'s train step on ``devices`` local devices; returns memory per device."""
  from jssl import parallel, train  # noqa: PLC0415

  if jax.device_count() < devices:
    raise ConfigError(f"{devices} devices requested, {jax.device_count()} present.")
  # Compiling needs shapes, not data: a synthetic source of the configured image size stands in.
  size = config.data.image_size
  with config.unlocked():
    config.data.source, config.data.synthetic_shape = "synthetic", (size, size, 3)
    config.data.synthetic_examples = config.train.batch_size
  mesh = parallel.make_mesh(jax.devices()[:devices], fsdp=config.parallel.fsdp)
  setup = train.make_setup(config, mesh=mesh)
  batch = {
    name: jax.ShapeDtypeStruct(spec.shape, spec.dtype, sharding=parallel.batch_sharding(mesh))
    for name, spec in train.batch_spec(setup).items()
  }
  compiled = train.make_train_step(setup).lower(train.abstract_state(setup), batch).compile()
  memory = compiled.memory_analysis()
  sizes = {
    "argument": memory.argument_size_in_bytes,
    "output": memory.output_size_in_bytes,
    "temp": memory.temp_size_in_bytes,
    "generated_code": memory.generated_code_size_in_bytes,
  }
  # Donated state aliases its output, so arguments + temporaries bound the peak.
  sizes["peak_estimate"] = sizes["argument"] + sizes["temp"]
  return {
    "devices": devices,
    "backend": jax.default_backend(),
    "global_batch": config.train.batch_size,
    "per_device_batch": config.train.batch_size // devices,
    "encoder": config.model.encoder,
    "image_size": size,
    **{f"{k}_mib": round(v / 2**20, 1) for k, v in sizes.items()},
  }


def run(config_path: str, overrides: list[str], *, topology: str | None, devices: int | None) -> dict:
  """Compiles in a child process with the right number of forced CPU devices and prints a report."""
  count = devices_for_topology(topology) if topology else devices
  if not count:
    raise ConfigError("Pass --topology (e.g. v4-64) or --devices N.")
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip(),
  )
  code = (
    "import json, sys; from jssl import config as c; from jssl.compile_check import compile_train_step; "
    "cfg = c.apply_overrides(c.load_config(sys.argv[1]), sys.argv[3:]); "
    "print(json.dumps(compile_train_step(cfg, devices=int(sys.argv[2]))))"
  )
  result = subprocess.run(
    [sys.executable, "-c", code, config_path, str(count), *overrides], env=env, capture_output=True, text=True
  )
  if result.returncode != 0:
    raise RuntimeError(f"compiling for {count} devices failed:\n{result.stderr[-4000:]}")
  report = json.loads(result.stdout.strip().splitlines()[-1])
  report.update(
    topology=topology,
    compiled_for=f"{count} forced CPU devices (not the TPU compiler: memory is the CPU compiler's estimate)",
  )
  print(
    f"{config_path}: {report['encoder']} at {report['image_size']} px, global batch {report['global_batch']} "
    f"({report['per_device_batch']} per device) on {report['compiled_for']}"
  )
  print(
    f"  per device: arguments {report['argument_mib']} MiB, temporaries {report['temp_mib']} MiB, "
    f"peak estimate {report['peak_estimate_mib']} MiB"
  )
  print(json.dumps(report))
  return report
