"""BYOL's regression loss (Grill et al. 2020, "Bootstrap Your Own Latent")."""

import jax
import jax.numpy as jnp

from jssl.losses.common import as_float, check_pair, l2_normalize


def byol(p: jax.Array, z: jax.Array) -> jax.Array:
  """Mean over examples of ``||p_i/||p_i|| - z_i/||z_i||||^2 = 2 - 2 cos(p_i, z_i)``.

  ``p`` is the online network's prediction of one view, ``z`` the target network's projection
  of the other view of the same image. The target gets no gradient (``stop_gradient`` here):
  it is updated as an exponential moving average of the online network.

  Follows deepmind-research ``byol/utils/helpers.py`` ``regression_loss`` (mean over the batch,
  as ``byol_experiment.py`` takes it). Deliberate differences: this is one direction; the
  reference's total is ``byol(p1, z2) + byol(p2, z1)``, which the task sums. Norms are clamped
  at 1e-12 (torch ``F.normalize``) where the reference clamps the squared norm at 1e-12: they
  differ only for vectors of norm < 1e-6.

  Args:
    p: ``[N, D]`` float online predictions (any scale, any float dtype).
    z: ``[N, D]`` float target projections.

  Returns:
    Scalar in [0, 4], float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  check_pair("byol", p, z)
  p = l2_normalize(as_float(p))
  z = l2_normalize(jax.lax.stop_gradient(as_float(z)))
  return 2.0 - 2.0 * jnp.mean(jnp.sum(p * z, axis=-1))
