"""Device mesh, shardings, and global arrays assembled from each process's local batch.

Every step is written as if one device held the whole global batch; the batch is
sharded along the ``data`` mesh axis and ``jax.jit`` partitions the computation, so
batch-norm statistics and contrastive negatives are global by construction.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jssl.errors import ConfigError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # the batch is split over every device


def devices_to_use(count: int) -> list:
  """Every device (``count`` 0), or this process's first ``count`` (single-process runs only)."""
  if count == 0:
    return jax.devices()
  if jax.process_count() > 1:
    raise ConfigError(
      f"parallel.devices={count} picks devices of one process; a {jax.process_count()}-process run "
      "uses every device (set it to 0)."
    )
  if not 0 < count <= len(jax.devices()):
    raise ConfigError(f"parallel.devices={count}: this machine has {len(jax.devices())} devices (0 uses all).")
  return jax.devices()[:count]


def make_mesh(devices=None, *, fsdp: int = 1) -> Mesh:
  """A ``(data, fsdp)`` mesh over ``devices`` (default: every device of every process)."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  if fsdp < 1 or devices.size % fsdp:
    raise ConfigError(f"parallel.fsdp={fsdp} must be >= 1 and divide the {devices.size} devices.")
  return Mesh(devices.reshape(-1, fsdp), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over all devices; the rest whole."""
  return NamedSharding(mesh, P(BATCH_AXES))


def state_shardings(tree, mesh: Mesh, *, min_size: int):
  """Where each array of a state goes: split over ``fsdp`` when it has ``min_size`` elements
  or more (on its largest dimension that the axis divides), replicated otherwise.

  ``jit`` then gathers each split parameter where the step needs it and reduce-scatters its
  gradient: memory for parameters and optimizer state falls by the ``fsdp`` size.
  """
  size = mesh.shape[FSDP_AXIS]

  def place(leaf):
    shape = getattr(leaf, "shape", ())
    if size > 1 and int(np.prod(shape, dtype=np.int64)) >= min_size:
      dims = sorted((d for d in range(len(shape)) if shape[d] % size == 0), key=lambda d: -shape[d])
      if dims:
        spec = [None] * len(shape)
        spec[dims[0]] = FSDP_AXIS
        return NamedSharding(mesh, P(*spec))
    return NamedSharding(mesh, P())

  return jax.tree.map(place, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_global_batch(global_batch: int, mesh: Mesh) -> int:
  """Validates ``global_batch`` against the mesh; returns this process's share of it."""
  devices, processes = mesh.devices.size, jax.process_count()
  if global_batch % devices:
    raise ConfigError(
      f"train.batch_size={global_batch} is not divisible by the {devices} devices; "
      f"use a multiple of {devices}, e.g. --config.train.batch_size={devices * max(1, global_batch // devices)}."
    )
  return global_batch // processes


def global_batch(local: dict, mesh: Mesh) -> dict:
  """Per-process numpy arrays ``[B_local, ...]`` -> global ``jax.Array`` s ``[B, ...]`` sharded on ``data``."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}


def initialize_distributed(
  *, coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
  """Joins a multi-process run; a no-op for a single process.

  Explicit arguments (or ``JSSL_COORDINATOR``, ``JSSL_NUM_PROCESSES``, ``JSSL_PROCESS_ID``)
  name the coordinator ``host:port`` and this process. Without them, ``JSSL_AUTO_DISTRIBUTED=1``
  (set by ``tpu/tpu.sh launch``), a TPU pod slice (``TPU_WORKER_HOSTNAMES`` with several
  hosts) or a Slurm job with several tasks makes ``jax.distributed.initialize()`` find its
  own settings. Must run before
  anything touches a JAX device.
  """
  import os  # noqa: PLC0415

  coordinator = coordinator or os.environ.get("JSSL_COORDINATOR")
  if num_processes is None and os.environ.get("JSSL_NUM_PROCESSES"):
    num_processes = int(os.environ["JSSL_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JSSL_PROCESS_ID"):
    process_id = int(os.environ["JSSL_PROCESS_ID"])
  cluster = (
    os.environ.get("JSSL_AUTO_DISTRIBUTED") == "1"
    or "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
    or int(os.environ.get("SLURM_NTASKS", "1")) > 1
  )
  if coordinator is None and not cluster:
    return
  if coordinator is not None and (num_processes is None or process_id is None):
    raise ConfigError(
      "--coordinator needs --num-processes and --process-id (or JSSL_NUM_PROCESSES and JSSL_PROCESS_ID)."
    )
  # CPU processes need a collectives backend to talk to each other; accelerators ignore this.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator is None:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
