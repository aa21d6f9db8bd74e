"""The sharded train step: global batch norm and negatives, proven by 1 vs 8 devices."""

import jax
import numpy as np
import pytest

from jssl import parallel, train


def _setup(config, devices):
  return train.make_setup(config, mesh=parallel.make_mesh(devices))


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  return {
    "view1": rng.random((batch, size, size, 3), dtype=np.float32),
    "view2": rng.random((batch, size, size, 3), dtype=np.float32),
    "label": rng.integers(0, 10, batch).astype(np.int32),
  }


def _steps(config, devices, count):
  """State after the first step (on the host) and the losses of ``count`` steps, from one compile."""
  setup = _setup(config, devices)
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  losses = []
  for seed in range(count):
    state, metrics = step(state, parallel.global_batch(_batch(config, seed), setup.mesh))
    losses.append(float(metrics["loss"]))
    if seed == 0:
      first = jax.device_get(state)
  return first, losses


@pytest.mark.slow
def test_eight_devices_match_one_device(smoke_config):
  """Same global batch on 1 and 8 devices: same loss, same updated parameters and BN statistics.

  With per-device batch norm or per-device negatives the losses would differ at the first
  step. Parameters are compared after one step: later steps pass ReLU kinks where a 1e-7
  difference in conv1 flips an activation and moves a gradient by ~5e-2, so only the loss
  (a continuous function) is compared there. The chunked loss is covered by transitivity:
  ``test_chunked_and_dense_losses_give_the_same_step`` on 8 devices, and
  ``tests/test_ntxent_chunked.py`` on 1, 4 and 8.
  """
  assert len(jax.devices()) == 8, "conftest forces 8 CPU devices"
  # SGD: updates are proportional to gradients, so parameter differences measure gradient differences.
  smoke_config.optim.name, smoke_config.optim.base_lr = "sgd", 0.1
  one, losses_one = _steps(smoke_config, jax.devices()[:1], 2)
  eight, losses_eight = _steps(smoke_config, jax.devices(), 2)
  # Same math, different reduction order across devices: float32 round-off only (seen: 4e-7).
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)


def test_batch_not_divisible_by_devices_is_rejected_before_compiling(smoke_config):
  smoke_config.train.batch_size = 12
  smoke_config.parallel.devices = 0  # all 8
  with pytest.raises(ValueError, match="divisible by the 8 devices"):
    train.make_setup(smoke_config)


@pytest.mark.slow
def test_step_lowers_the_loss_on_a_fixed_batch(smoke_config):
  setup = _setup(smoke_config, jax.devices())
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  batch = parallel.global_batch(_batch(smoke_config), setup.mesh)
  losses = []
  for _ in range(8):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0] - 0.05, losses
  assert int(state.step) == 8


@pytest.mark.slow
def test_chunked_and_dense_losses_give_the_same_step(smoke_config):
  smoke_config.optim.name, smoke_config.optim.base_lr = "sgd", 0.1
  dense, dense_losses = _steps(smoke_config, jax.devices(), 1)
  smoke_config.simclr.block_size = 12  # does not divide 2B = 64
  chunked, chunked_losses = _steps(smoke_config, jax.devices(), 1)
  np.testing.assert_allclose(chunked_losses, dense_losses, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(dense.params), jax.tree.leaves(chunked.params)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fsdp_splits_parameters_and_matches_one_device(smoke_config):
  smoke_config.optim.name, smoke_config.optim.base_lr = "sgd", 0.1
  one, losses_one = _steps(smoke_config, jax.devices()[:1], 1)
  smoke_config.parallel.fsdp, smoke_config.parallel.fsdp_min_size = 2, 256
  smoke_config.parallel.devices = 0  # all 8
  setup = train.make_setup(smoke_config)
  assert dict(setup.mesh.shape) == {"data": 4, "fsdp": 2}
  state = train.create_state(setup, seed=0)
  kernel = state.params["encoder"]["layer4_0"]["conv2"]["kernel"]  # [3, 3, 64, 64]
  assert "fsdp" in kernel.sharding.spec
  assert kernel.addressable_shards[0].data.size == kernel.size // 2, "each device holds half"
  assert state.params["encoder"]["bn1"]["bias"].sharding.spec == jax.sharding.PartitionSpec()
  state, metrics = train.make_train_step(setup)(state, parallel.global_batch(_batch(smoke_config, 0), setup.mesh))
  np.testing.assert_allclose(float(metrics["loss"]), losses_one[0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def _image_batch(config, seed=0):
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  return {
    "image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
    "label": rng.integers(0, 10, batch).astype(np.int32),
  }


@pytest.mark.slow
def test_device_augmentation_is_the_same_on_one_and_eight_devices(smoke_config):
  """augment.on=device: the step makes the views from uint8 images, each example from a key
  fixed by its index in the global batch, so 1 and 8 devices see the same views."""
  smoke_config.augment.on = "device"
  smoke_config.optim.name, smoke_config.optim.base_lr = "sgd", 0.1
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    setup = _setup(smoke_config, devices)
    assert set(train.batch_spec(setup)) == {"image", "label"}
    state = train.create_state(setup, seed=0)
    state, metrics = train.make_train_step(setup)(state, parallel.global_batch(_image_batch(smoke_config), setup.mesh))
    results.append((float(metrics["loss"]), jax.device_get(state.params)))
  np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_device_augmentation_draws_new_views_each_step(smoke_config):
  """The views come from the step's RNG: the same images give a different loss at the next
  step even with the learning rate at zero (nothing else changes)."""
  smoke_config.augment.on = "device"
  smoke_config.optim.name, smoke_config.optim.base_lr = "sgd", 0.0
  setup = _setup(smoke_config, jax.devices())
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  batch = parallel.global_batch(_image_batch(smoke_config), setup.mesh)
  state, first = step(state, batch)
  state, second = step(state, batch)
  assert abs(float(first["loss"]) - float(second["loss"])) > 1e-4
