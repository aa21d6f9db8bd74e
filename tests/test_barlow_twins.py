"""Barlow Twins: the task's loss and metrics against the embeddings recomputed by hand and a
float64 NumPy cross-correlation, per-view batch norm, the projector, the bias learning rate,
settings it refuses, and a few steps on one batch. (Every task's step contract:
tests/test_task_contracts.py; its smoke run, export and eval: tests/test_task_runs.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from joint_embedding_checks import (
  call_loss,
  check_last_bias_gets_no_gradient,
  check_projector,
  check_views_and_batch_norm,
  embedding_std,
  losses_on_one_batch,
  setup_for,
)

from jssl.errors import ConfigError
from jssl.losses import barlow_twins
from jssl.tasks.barlow_twins import correlation_terms

LAMBD, SCALE = 0.02, 0.5  # not the defaults: the test sees that the task passes its settings on


@pytest.fixture(scope="module")
def call():
  return call_loss(
    "barlow_twins", [f"--config.barlow_twins.lambd={LAMBD}", f"--config.barlow_twins.scale_loss={SCALE}"]
  )


def cross_correlation(z_a, z_b):
  """float64 NumPy: each dimension standardised over the batch (biased variance + 1e-5, as
  torch's BatchNorm1d without affine), ``C = a^T b / N``."""
  a = (z_a - z_a.mean(0)) / np.sqrt(z_a.var(0) + 1e-5)
  b = (z_b - z_b.mean(0)) / np.sqrt(z_b.var(0) + 1e-5)
  return a.T @ b / len(z_a)


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_the_loss_is_barlow_twins_of_the_two_views_embeddings(call):
  want = SCALE * float(barlow_twins(jnp.asarray(call.z1, jnp.float32), jnp.asarray(call.z2, jnp.float32), lambd=LAMBD))
  np.testing.assert_allclose(call.loss, want, rtol=1e-4)
  c = cross_correlation(call.z1, call.z2)
  off = ~np.eye(len(c), dtype=bool)
  np.testing.assert_allclose(
    call.loss, SCALE * (np.sum((1 - np.diag(c)) ** 2) + LAMBD * np.sum(c[off] ** 2)), rtol=1e-4
  )


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_metrics_are_the_two_sums_and_the_embedding_std(call):
  c = cross_correlation(call.z1, call.z2)
  on, off = np.sum((1 - np.diag(c)) ** 2), np.sum(c[~np.eye(len(c), dtype=bool)] ** 2)
  assert set(call.metrics) == {"on_diagonal", "off_diagonal", "embedding_std"}
  np.testing.assert_allclose(call.metrics["on_diagonal"], on, rtol=1e-4)
  np.testing.assert_allclose(call.metrics["off_diagonal"], off, rtol=1e-4)
  np.testing.assert_allclose(call.metrics["embedding_std"], embedding_std(call.z1), rtol=1e-4)
  np.testing.assert_allclose(
    call.loss, SCALE * (call.metrics["on_diagonal"] + LAMBD * call.metrics["off_diagonal"]), rtol=1e-5
  )


def test_correlation_terms_of_identical_whitened_views():
  """Two copies of decorrelated unit-variance embeddings: C is the identity, both sums 0; one
  dimension negated: its diagonal entry is -1, on-diagonal (1 - (-1))^2 = 4."""
  x = np.random.default_rng(0).normal(size=(64, 8))
  # Orthonormal columns spanning the centred columns (so of mean 0), scaled to variance 1.
  z = jnp.asarray(np.linalg.qr(x - x.mean(0))[0] * 8.0, jnp.float32)
  terms = correlation_terms(z, z)
  assert float(terms["on_diagonal"]) < 1e-6 and float(terms["off_diagonal"]) < 1e-6, terms
  flipped = correlation_terms(z, z.at[:, 0].multiply(-1))
  np.testing.assert_allclose(float(flipped["on_diagonal"]), 4.0, rtol=1e-3)


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_each_view_goes_through_the_network_on_its_own(call):
  check_views_and_batch_norm(call)


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_projector_is_three_layers_with_batch_norm_on_the_hidden_ones(call):
  check_projector(call)


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_the_projectors_last_bias_gets_no_gradient(call):
  check_last_bias_gets_no_gradient(call)


def test_biases_and_batch_norm_parameters_take_the_bias_learning_rate():
  """``optimizer`` scales the updates of the parameters without weight decay / trust ratio by
  ``bias_lr_ratio`` (momentum included: two steps), leaves the kernels' as ``tx`` makes them,
  and returns ``tx`` itself at ratio 1."""
  _, setup = setup_for("barlow_twins", ["--config.barlow_twins.bias_lr_ratio=0.25"])
  params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))}, "bn": {"scale": jnp.ones((2,))}}
  tx = optax.sgd(0.1, momentum=0.9)
  routed = setup.task.optimizer(tx)
  state, plain_state = routed.init(params), tx.init(params)
  for seed in range(2):
    grads = jax.tree.map(lambda p, seed=seed: jax.random.normal(jax.random.key(seed), p.shape), params)
    updates, state = routed.update(grads, state, params)
    plain, plain_state = tx.update(grads, plain_state, params)
    np.testing.assert_allclose(updates["dense"]["kernel"], plain["dense"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], 0.25 * plain["dense"]["bias"], rtol=1e-6)
    np.testing.assert_allclose(updates["bn"]["scale"], 0.25 * plain["bn"]["scale"], rtol=1e-6)
    assert np.abs(plain["dense"]["bias"]).min() > 0
  _, setup = setup_for("barlow_twins", ["--config.barlow_twins.bias_lr_ratio=1.0"])
  assert setup.task.optimizer(tx) is tx


@pytest.mark.parametrize(
  ("override", "message"),
  [
    ("--config.barlow_twins.lambd=-0.1", "barlow_twins.lambd=-0.1 must be >= 0"),
    ("--config.barlow_twins.scale_loss=0.0", "barlow_twins.scale_loss=0.0 must be > 0"),
    ("--config.barlow_twins.bias_lr_ratio=0.0", "barlow_twins.bias_lr_ratio=0.0 must be > 0"),
  ],
)
def test_refuses_invalid_settings(override, message):
  with pytest.raises(ConfigError, match=message):
    setup_for("barlow_twins", [override])


@pytest.mark.slow  # its fixture compiles the step; tests/test_vicreg.py covers the shared joint_embedding base fast
def test_a_few_steps_lower_the_loss_on_one_batch(call):
  losses = losses_on_one_batch(call, steps=5)
  assert losses[-1] < 0.9 * losses[0], losses
