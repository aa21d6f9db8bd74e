"""Workdirs laid out as ``jssl pretrain`` leaves them, with random-filled checkpoints instead
of training: for tests that only need weights to export, load or evaluate (the tests that
check learning still train).

``write_random_run(config, workdir, steps=(4, 12))`` writes ``config.json`` (with the data
facts) and one checkpoint per step whose every array is drawn from the abstract state's
shapes (``random_state``). Seconds, where a 12-step smoke run costs a
compile of the train step and the input pipeline.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jssl import train
from jssl import workdir as workdir_lib
from jssl.checkpoint import Checkpointer


def random_state(setup: train.Setup, seed: int) -> train.TrainState:
  """A state of ``setup``'s structure, shapes, dtypes and shardings, filled at random:
  convolution kernels He-scaled (activations stay O(1) through a deep ResNet), batch-norm
  scales and variances in (0.5, 1.5), other floats in (-0.2, 0.2), integers 0."""
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = jax.tree_util.keystr(path)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      value = np.zeros(x.shape, x.dtype)
    elif name.endswith("['kernel']") and len(x.shape) == 4:
      value = rng.standard_normal(x.shape) * np.sqrt(2 / np.prod(x.shape[:3]))
    else:
      low, high = (0.5, 1.5) if ("scale" in name or "var" in name) else (-0.2, 0.2)
      value = rng.uniform(low, high, x.shape)
    return jax.device_put(np.asarray(value, x.dtype), x.sharding)

  return jax.tree_util.tree_map_with_path(fill, train.abstract_state(setup))


def write_random_run(config, workdir, *, steps=(12,), seed: int = 0, mesh=None):
  """``workdir`` with ``config.json`` and one random checkpoint per step in ``steps`` (the
  state's ``step`` field set to it). Returns ``(setup, {step: state})``."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  setup = train.make_setup(config, mesh=mesh)
  workdir_lib.write_run_config(workdir, config, setup.source)
  checkpointer = Checkpointer(workdir, async_save=False, max_to_keep=len(steps))
  states = {}
  for i, step in enumerate(steps):
    state = random_state(setup, seed + i)
    states[step] = state.replace(step=jax.device_put(np.asarray(step, np.int32), state.step.sharding))
    checkpointer.save(step, states[step], force=True)
  checkpointer.close()
  return setup, states
