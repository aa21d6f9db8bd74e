"""Every registered task's full train step, traced abstractly (``jax.eval_shape``) in seconds.

Loss, gradients, optimizer update, probe and state bookkeeping of each task are traced on
its smoke config's shapes, sharded over 8 devices, without compiling or running anything:
a task that breaks the step's contract (a state that changes structure, shape or dtype; a
non-scalar loss; a metric that is not a scalar) fails here before any slow end-to-end test.
"""

import pathlib

import jax
import numpy as np
import pytest

from jssl import parallel, train
from jssl.config import load_config
from jssl.tasks import TASKS, check_fields

REPO = pathlib.Path(__file__).resolve().parents[1]


def _abstract(tree):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_train_step_keeps_the_state_contract(task):
  """Every registered task, through its smoke run (``configs/smoke.py:TASK``): a new task
  module is covered with no edit here."""
  config = load_config(f"{REPO / 'configs' / 'smoke.py'}:{task}")
  assert config.task == task
  check_fields(config)  # the smoke recipe sets no field its task ignores
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:8]))
  state = train.abstract_state(setup)
  batch = _abstract(train.example_batch(setup))
  new_state, metrics = jax.eval_shape(train.make_train_step(setup), state, batch)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
    assert (after.shape, after.dtype) == (before.shape, before.dtype)
  assert metrics["loss"].shape == () and metrics["loss"].dtype == np.float32
  assert all(m.shape == () for m in jax.tree.leaves(metrics)), {k: v.shape for k, v in metrics.items()}
