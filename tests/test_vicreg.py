"""VICReg: the task's loss and its three logged terms against the embeddings recomputed by hand
and float64 NumPy, per-view batch norm, the expander, settings it refuses, and a few steps on
one batch. (Every task's step contract: tests/test_task_contracts.py; its smoke run, export and
eval: tests/test_task_runs.py.)"""

import jax.numpy as jnp
import numpy as np
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
from jssl.losses import vicreg

WEIGHTS = {"sim_weight": 10.0, "var_weight": 30.0, "cov_weight": 2.0}  # not the defaults: the task passes them on


@pytest.fixture(scope="module")
def call():
  return call_loss("vicreg", [f"--config.vicreg.{name}={value}" for name, value in WEIGHTS.items()])


def terms(z_a, z_b):
  """float64 NumPy: invariance, variance hinge (unbiased, + 1e-4 in the root, the views
  averaged), off-diagonal covariance (unbiased, / D, the views summed)."""
  n, d = z_a.shape

  def variance_and_covariance(z):
    centred = z - z.mean(0)
    cov = centred.T @ centred / (n - 1)
    hinge = np.mean(np.maximum(0.0, 1.0 - np.sqrt(np.diag(cov) + 1e-4)))
    return hinge, np.sum(cov[~np.eye(d, dtype=bool)] ** 2) / d

  (var_a, cov_a), (var_b, cov_b) = variance_and_covariance(z_a), variance_and_covariance(z_b)
  return {"similarity": np.mean((z_a - z_b) ** 2), "variance": (var_a + var_b) / 2, "covariance": cov_a + cov_b}


def test_the_loss_is_vicreg_of_the_two_views_embeddings(call):
  z1, z2 = jnp.asarray(call.z1, jnp.float32), jnp.asarray(call.z2, jnp.float32)
  np.testing.assert_allclose(call.loss, float(vicreg(z1, z2, **WEIGHTS)), rtol=1e-4)
  want = terms(call.z1, call.z2)
  np.testing.assert_allclose(call.loss, sum(WEIGHTS[f"{name[:3]}_weight"] * want[name] for name in want), rtol=1e-4)


def test_metrics_are_the_three_terms_and_the_embedding_std(call):
  want = terms(call.z1, call.z2)
  assert set(call.metrics) == {"similarity", "variance", "covariance", "embedding_std"}
  for name, value in want.items():
    np.testing.assert_allclose(call.metrics[name], value, rtol=1e-4, err_msg=name)
  assert want["variance"] > 0 and want["covariance"] > 0  # every term takes part at initialisation
  np.testing.assert_allclose(call.metrics["embedding_std"], embedding_std(call.z1), rtol=1e-4)


def test_each_view_goes_through_the_network_on_its_own(call):
  check_views_and_batch_norm(call)


def test_expander_is_three_layers_with_batch_norm_on_the_hidden_ones(call):
  check_projector(call)


def test_the_expanders_last_bias_gets_no_gradient(call):
  check_last_bias_gets_no_gradient(call)


@pytest.mark.parametrize("name", ["sim_weight", "var_weight", "cov_weight"])
def test_refuses_negative_weights(name):
  with pytest.raises(ConfigError, match=f"vicreg.{name}=-1.0 must be >= 0"):
    setup_for("vicreg", [f"--config.vicreg.{name}=-1.0"])


def test_a_few_steps_lower_the_loss_on_one_batch(call):
  losses = losses_on_one_batch(call, steps=5)
  assert losses[-1] < 0.9 * losses[0], losses
