"""The six view methods (BYOL, SimSiam, MoCo v3, Barlow Twins, VICReg, DINO) on any layout:
global batch statistics (batch norm, contrastive keys, cross-correlation, variance and
covariance, DINO's center) make a step on 8 devices equal the step on 1, and a run saved and
restored continues exactly as one that was not interrupted (EMA targets, center, optimizer
routes included). Two processes x 2 devices vs 1 x 4: tests/test_multiprocess.py."""

import jax
import numpy as np
import pytest
from view_methods import METHODS, flat_state, mesh_of, method_config, steps_on_fixed_batches

from benchmarks.random_batch import random_batch
from jssl import train
from jssl.checkpoint import Checkpointer


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_eight_devices_match_one_device(method):
  """Same global batch: same loss, same parameters, BN statistics and extra state (EMA target,
  center) after one step, same second loss. A statistic taken per device (or an all-reduce
  without its backward pass) breaks this at the first step."""
  config = method_config(method)
  one, losses_one = steps_on_fixed_batches(config, mesh_of(jax.devices()[:1]))
  eight, losses_eight = steps_on_fixed_batches(config, mesh_of(jax.devices()))
  one, eight = flat_state(one), flat_state(eight)
  assert one.keys() == eight.keys()
  for key in one:
    np.testing.assert_allclose(eight[key], one[key], rtol=1e-5, atol=1e-5, err_msg=key)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)


def test_two_devices_match_one_device_for_barlow_twins():
  """The fast guard of the test above, for the method whose loss is all global statistics
  (cross-correlation over the batch): the loss of the first step on 2 devices vs 1."""
  config = method_config("barlow_twins")
  _, one = steps_on_fixed_batches(config, mesh_of(jax.devices()[:1]), count=1)
  _, two = steps_on_fixed_batches(config, mesh_of(jax.devices()[:2]), count=1)
  np.testing.assert_allclose(two, one, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_restored_run_continues_exactly(method, tmp_path):
  """Two steps, a checkpoint, a restore into a fresh process's abstract state, two more steps:
  bit-identical to four uninterrupted steps (every part of the state is in the checkpoint).
  Killing the process between the save and the restore is tests/test_resume.py's business and
  does not depend on the method; which state a method keeps does, and is checked here."""
  config = method_config(method)
  config.parallel.devices = 1
  setup = train.make_setup(config)
  step = train.make_train_step(setup)
  batches = [random_batch(setup, jax.random.key(seed)) for seed in range(4)]
  state = train.create_state(setup, seed=0)
  losses = []
  for i, batch in enumerate(batches):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
    if i == 1:
      checkpointer = Checkpointer(tmp_path)
      checkpointer.save(2, state, force=True)
      checkpointer.wait()
  uninterrupted = flat_state(train.to_host(state))

  restored = Checkpointer(tmp_path).restore(train.abstract_state(setup))
  assert int(restored.step) == 2
  resumed_losses = []
  for batch in batches[2:]:
    restored, metrics = step(restored, batch)
    resumed_losses.append(float(metrics["loss"]))
  assert resumed_losses == losses[2:]
  resumed = flat_state(train.to_host(restored))
  assert resumed.keys() == uninterrupted.keys()
  keeps_extra = method in ("byol", "moco_v3", "dino")  # a target network (and DINO's center)
  assert any(key.startswith("['extra']") for key in resumed) == keeps_extra
  for key in resumed:
    np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=key)
  # The optimizer state, RNG and counters too: every leaf of the state.
  for a, b in zip(jax.tree.leaves(train.to_host(state)), jax.tree.leaves(train.to_host(restored)), strict=True):
    np.testing.assert_array_equal(b, a)
