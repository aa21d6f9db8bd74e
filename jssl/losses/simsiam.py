"""SimSiam's loss (Chen & He 2021, "Exploring Simple Siamese Representation Learning")."""

import jax
import jax.numpy as jnp

from jssl.losses.common import as_float, check_pair, l2_normalize


def simsiam(p: jax.Array, z: jax.Array) -> jax.Array:
  """Mean over examples of the negative cosine similarity ``-cos(p_i, z_i)``.

  ``p`` is the predictor's output for one view, ``z`` the projection of the other view of the
  same image by the same encoder. ``z`` gets ``stop_gradient`` here: the paper shows that the
  stop-gradient is what keeps SimSiam from collapsing.

  Follows facebookresearch/simsiam ``main_simsiam.py``: ``criterion = nn.CosineSimilarity(dim=1)``
  and ``loss = -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5``. Deliberate
  differences: this is one direction (the task takes ``0.5 * (simsiam(p1, z2) + simsiam(p2,
  z1))``), and each vector's norm is clamped at 1e-12 (torch ``F.normalize``) where
  ``CosineSimilarity`` clamps at 1e-8: they differ only for vectors of norm < 1e-8.

  Args:
    p: ``[N, D]`` float predictions (any scale, any float dtype).
    z: ``[N, D]`` float projections (the targets).

  Returns:
    Scalar in [-1, 1], float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  check_pair("simsiam", p, z)
  p = l2_normalize(as_float(p))
  z = l2_normalize(jax.lax.stop_gradient(as_float(z)))
  return -jnp.mean(jnp.sum(p * z, axis=-1))
