"""Collapse monitors for embeddings trained without negatives (BYOL, SimSiam, ...)."""

import jax
import jax.numpy as jnp

from jssl.losses.common import as_float, l2_normalize


def embedding_std(z: jax.Array) -> jax.Array:
  """Mean over dimensions of the std over the batch of the L2-normalised rows of ``z``.

  SimSiam's collapse monitor (Chen & He 2021, Sec. 4.1): 0 when every example maps to the same
  vector, about ``1 / sqrt(D)`` when the normalised outputs spread like an isotropic Gaussian.
  The std is the biased (population) one; the paper publishes no code for it. Pass the global
  batch for the global statistic. For logging: no gradient flows (the std's gradient is NaN at
  collapse, where the monitor matters most).

  Args:
    z: ``[N, D]`` float embeddings (any float dtype).

  Returns:
    Scalar, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  if z.ndim != 2:
    raise ValueError(f"embedding_std: expected [N, D] embeddings, got shape {z.shape}.")
  return jnp.mean(jnp.std(l2_normalize(jax.lax.stop_gradient(as_float(z))), axis=0))
