"""compute dtype bfloat16: float32 parameters and BN statistics, float32 loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import parallel, train


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  return {
    "view1": rng.random((32, 16, 16, 3), dtype=np.float32),
    "view2": rng.random((32, 16, 16, 3), dtype=np.float32),
    "label": rng.integers(0, 10, 32).astype(np.int32),
  }


def _first_loss(config):
  setup = train.make_setup(config)
  state = train.create_state(setup, seed=0)
  new_state, metrics = train.make_train_step(setup)(state, parallel.global_batch(_batch(), setup.mesh))
  return float(metrics["loss"]), new_state


@pytest.mark.slow
def test_bfloat16_loss_agrees_with_float32_and_keeps_float32_state(smoke_config):
  f32_loss, _ = _first_loss(smoke_config)
  smoke_config.model.dtype = "bfloat16"
  bf16_loss, state = _first_loss(smoke_config)
  # bf16 keeps 8 bits of mantissa (relative error ~4e-3 per op); the loss is an average, so 2%.
  np.testing.assert_allclose(bf16_loss, f32_loss, rtol=2e-2)
  assert bf16_loss != f32_loss, "the bf16 path really computed in bf16"
  for leaf in jax.tree.leaves((state.params, state.batch_stats, state.opt_state)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32


@pytest.mark.slow
def test_bfloat16_loss_finite_at_low_temperature(smoke_config):
  smoke_config.model.dtype = "bfloat16"
  smoke_config.simclr.temperature = 0.05
  loss, state = _first_loss(smoke_config)
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))
