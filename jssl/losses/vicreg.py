"""VICReg's loss (Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning")."""

import jax
import jax.numpy as jnp

from jssl.losses.common import PRECISION, as_float, check_pair

# Added to the variance inside the square root (the reference's 0.0001): keeps the gradient
# of the std finite when a dimension collapses.
VARIANCE_EPS = 1e-4


def variance_and_covariance(z: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The hinge on the std and the off-diagonal covariance penalty of ``[N, D]`` ``z``.

  Returns ``(mean_j relu(1 - sqrt(Var_j + 1e-4)), sum_{i != j} Cov_ij^2 / D)`` with the
  unbiased (N - 1) variance and covariance over the batch.
  """
  batch, dim = z.shape
  centred = z - jnp.mean(z, axis=0, keepdims=True)
  cov = jnp.matmul(centred.T, centred, precision=PRECISION) / (batch - 1)  # [D, D]
  # The variance from the centred values directly, not diag(cov): same value, no matmul rounding.
  std = jnp.sqrt(jnp.sum(centred * centred, axis=0) / (batch - 1) + VARIANCE_EPS)
  off_diagonal = jnp.where(jnp.eye(dim, dtype=bool), 0.0, cov)
  return jnp.mean(jax.nn.relu(1.0 - std)), jnp.sum(jnp.square(off_diagonal)) / dim


def vicreg_terms(z_a: jax.Array, z_b: jax.Array) -> dict[str, jax.Array]:
  """VICReg's three terms, unweighted, for logging and for ``vicreg``.

  - ``similarity``: invariance, ``mean((z_a - z_b)^2)`` over all N * D entries.
  - ``variance``: ``(mean_j relu(1 - sqrt(Var(z_a)_j + 1e-4)) + (same for z_b)) / 2``, the
    unbiased variance over the batch (1 - 0.01 = 0.99 for a collapsed batch).
  - ``covariance``: ``(sum_{i != j} Cov(z_a)_ij^2 + sum_{i != j} Cov(z_b)_ij^2) / D`` with
    ``Cov = (z - mean)^T (z - mean) / (N - 1)``.

  Pass the whole *global* batch (plain ``jnp``: under ``jax.jit`` with the batch sharded over
  devices the statistics are global, as the reference's gather of all embeddings).

  Follows facebookresearch/vicreg ``main_vicreg.py`` ``VICReg.forward`` (``repr_loss``,
  ``std_loss``, ``cov_loss``). No difference in value.

  Args:
    z_a: ``[N, D]`` float embeddings of the first views (any float dtype), N >= 2.
    z_b: ``[N, D]`` float embeddings of the second views.

  Returns:
    ``{"similarity", "variance", "covariance"}`` scalars, float32 (float64 for float64 inputs
    under ``jax_enable_x64``).
  """
  check_pair("vicreg", z_a, z_b, min_rows=2)
  z_a, z_b = as_float(z_a), as_float(z_b)
  variance_a, covariance_a = variance_and_covariance(z_a)
  variance_b, covariance_b = variance_and_covariance(z_b)
  return {
    "similarity": jnp.mean(jnp.square(z_a - z_b)),
    "variance": (variance_a + variance_b) / 2,
    "covariance": covariance_a + covariance_b,
  }


def vicreg(
  z_a: jax.Array, z_b: jax.Array, *, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0
) -> jax.Array:
  """``sim_weight * similarity + var_weight * variance + cov_weight * covariance`` of
  ``vicreg_terms(z_a, z_b)``; the defaults are the paper's (lambda = mu = 25, nu = 1).

  Returns:
    Scalar, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  terms = vicreg_terms(z_a, z_b)
  return sim_weight * terms["similarity"] + var_weight * terms["variance"] + cov_weight * terms["covariance"]
