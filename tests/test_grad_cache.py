"""Gradient caching reproduces the full-batch contrastive gradient (BN-free model)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.grad_cache import grad_cache, merge_microbatches, split_microbatches
from jssl.losses import ntxent


def _mlp(params, x):
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def _params(rng):
  return {
    "w1": jnp.asarray(rng.normal(size=(6, 16)), jnp.float32),
    "b1": jnp.zeros(16),
    "w2": jnp.asarray(rng.normal(size=(16, 8)), jnp.float32),
  }


def test_split_and_merge_are_inverse_and_interleaved():
  x = jnp.arange(12)
  chunks = split_microbatches(x, 3)
  np.testing.assert_array_equal(chunks[1], [1, 4, 7, 10])
  np.testing.assert_array_equal(merge_microbatches(chunks), x)
  with pytest.raises(ValueError, match="micro-batches"):
    split_microbatches(x, 5)


@pytest.mark.parametrize("microbatches", [2, 4, 8])
def test_gradient_equals_full_batch_gradient(microbatches):
  rng = np.random.default_rng(microbatches)
  params = _params(rng)
  views = jnp.asarray(rng.normal(size=(2, 16, 6)), jnp.float32)  # two views of 16 examples
  inputs = jnp.concatenate([views[0], views[1]], axis=1)  # [16, 12]: both views per example

  def embed(p, carry, x):
    z = jnp.concatenate([_mlp(p, x[:, :6]), _mlp(p, x[:, 6:])], axis=1)
    return z, x[:, 0], carry + 1

  def loss(z):
    return ntxent(z[:, :8], z[:, 8:], temperature=0.2)

  def full(p):
    return loss(embed(p, 0, inputs)[0])

  want_loss, want_grads = jax.value_and_grad(full)(params)
  got_loss, got_grads, aux, carry = jax.jit(lambda p: grad_cache(embed, loss, p, 0, inputs, microbatches=microbatches))(
    params
  )
  # Same arithmetic regrouped: float32 round-off (observed ~1e-7).
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6)
  for key in params:
    np.testing.assert_allclose(got_grads[key], want_grads[key], rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(aux, inputs[:, 0])  # per-example outputs come back in order
  assert int(carry) == microbatches  # the carry went through every micro-batch once


@pytest.mark.slow
def test_train_step_with_microbatches_runs_and_learns(smoke_config):
  from jssl import parallel, train  # noqa: PLC0415

  smoke_config.simclr.microbatches = 4  # 32 = 4 x 8; 8 devices hold one row of each
  setup = train.make_setup(smoke_config)
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  rng = np.random.default_rng(0)
  batch = parallel.global_batch(
    {
      "view1": rng.random((32, 16, 16, 3), dtype=np.float32),
      "view2": rng.random((32, 16, 16, 3), dtype=np.float32),
      "label": rng.integers(0, 10, 32).astype(np.int32),
    },
    setup.mesh,
  )
  losses = []
  for _ in range(6):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
