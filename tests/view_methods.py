"""The six view methods of issue 16 and one SGD step of each on a fixed batch: shared by
tests/test_view_methods.py (1 vs 8 devices, resume) and tests/multiprocess_driver.py (2 processes)."""

import pathlib

import jax
import numpy as np

from benchmarks.random_batch import random_batch
from jssl import train
from jssl.config import load_config

METHODS = ("byol", "simsiam", "moco_v3", "barlow_twins", "vicreg", "dino")
KEEPS_EXTRA = ("byol", "moco_v3", "dino")  # a target network (and DINO's center) in the state's extra
SMOKE = pathlib.Path(__file__).resolve().parents[1] / "configs" / "smoke.py"


def method_config(method: str):
  """The method's smoke config with SGD (updates proportional to gradients, so parameter
  differences measure gradient differences) on every device of the run."""
  config = load_config(f"{SMOKE}:{method}")
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  config.parallel.devices = 0
  return config


def steps_on_fixed_batches(config, mesh, count: int = 2):
  """``(state after the first step, on the host, as numpy; losses of count steps)``.

  The batches are ``random_batch`` of keys 0, 1, ...: made on the devices, their values do
  not depend on the mesh (threefry is partitionable), so any layout sees the same global batch.
  """
  setup = train.make_setup(config, mesh=mesh)
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  losses = []
  for seed in range(count):
    state, metrics = step(state, random_batch(setup, jax.random.key(seed)))
    losses.append(float(train.to_host(metrics["loss"])))
    if seed == 0:
      first = train.to_host(state)
  return first, np.array(losses)


def flat_state(state) -> dict[str, np.ndarray]:
  """``path -> array`` of a host state's params, batch_stats and extra (what must agree)."""
  parts = {"params": state.params, "batch_stats": state.batch_stats, "extra": state.extra}
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(parts)}
