"""Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021, "Barlow Twins:
Self-Supervised Learning via Redundancy Reduction")."""

import numbers

import jax
import jax.numpy as jnp

from jssl.errors import ConfigError
from jssl.losses.common import PRECISION, as_float, check_pair

# torch.nn.BatchNorm1d's default eps, added to the variance inside the square root.
BATCH_NORM_EPS = 1e-5


def standardize(z: jax.Array) -> jax.Array:
  """Each column (dimension) of ``[N, D]`` ``z`` to mean 0 and unit biased std over the batch:
  ``(z - mean) / sqrt(var + 1e-5)``, as ``nn.BatchNorm1d(D, affine=False)`` in training mode."""
  centred = z - jnp.mean(z, axis=0, keepdims=True)
  return centred * jax.lax.rsqrt(jnp.mean(centred * centred, axis=0, keepdims=True) + BATCH_NORM_EPS)


def barlow_twins(z_a: jax.Array, z_b: jax.Array, *, lambd: float) -> jax.Array:
  """``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2`` with ``C = std(z_a)^T std(z_b) / N``.

  ``C`` is the ``[D, D]`` cross-correlation of the two views' embeddings over the batch: each
  dimension is standardised over the batch first (mean 0, biased std with torch BatchNorm's
  eps 1e-5 inside the square root, as BatchNorm1d without affine in training mode). The first
  term makes each dimension invariant to the augmentations; the second decorrelates the
  dimensions.

  Pass the whole *global* batch: under ``jax.jit`` with the batch sharded over devices the
  means, variances and ``C`` are then global sums (as the reference's SyncBatchNorm and
  all-reduce of ``C``).

  Follows facebookresearch/barlowtwins ``main.py`` ``BarlowTwins.forward``: ``c = bn(z1).T @
  bn(z2) / batch_size`` summed over GPUs, ``on_diag + lambd * off_diag``. No difference (the
  reference's ``bn`` is converted to SyncBatchNorm, so its statistics are global too).

  Args:
    z_a: ``[N, D]`` float projections of the first views (any float dtype), N >= 2.
    z_b: ``[N, D]`` float projections of the second views.
    lambd: weight of the off-diagonal term (reference code 0.0051, paper 5e-3).

  Returns:
    Scalar, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  check_pair("barlow_twins", z_a, z_b, min_rows=2)
  if isinstance(lambd, numbers.Real) and not lambd >= 0:
    raise ConfigError(f"barlow_twins lambd must be >= 0, got {lambd}.")
  batch, dim = z_a.shape
  c = jnp.matmul(standardize(as_float(z_a)).T, standardize(as_float(z_b)), precision=PRECISION) / batch  # [D, D]
  diagonal = jnp.eye(dim, dtype=bool)
  on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
  # Masked rather than sum(c^2) - sum(diag^2): no cancellation when the diagonal dominates.
  off_diagonal = jnp.sum(jnp.square(jnp.where(diagonal, 0.0, c)))
  return on_diagonal + lambd * off_diagonal
