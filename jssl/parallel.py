"""Device mesh, shardings, and global arrays assembled from each process's local batch.

Every step is written as if one device held the whole global batch; the batch is
sharded along the ``data`` mesh axis and ``jax.jit`` partitions the computation, so
batch-norm statistics and contrastive negatives are global by construction.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over ``data``; the rest whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_global_batch(global_batch: int, mesh: Mesh) -> int:
  """Validates ``global_batch`` against the mesh; returns this process's share of it."""
  devices, processes = mesh.devices.size, jax.process_count()
  if global_batch % devices:
    raise ValueError(f"train.batch_size={global_batch} is not divisible by the {devices} devices; "
                     f"use a multiple of {devices}, e.g. --config.train.batch_size={devices * max(1, global_batch // devices)}.")
  return global_batch // processes


def global_batch(local: dict, mesh: Mesh) -> dict:
  """Per-process numpy arrays ``[B_local, ...]`` -> global ``jax.Array`` s ``[B, ...]`` sharded on ``data``."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}
