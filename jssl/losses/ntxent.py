"""NT-Xent, the normalised-temperature cross-entropy of SimCLR (Chen et al. 2020)."""

import jax
import jax.numpy as jnp

# Added to the self-similarity logits so that exp() of them underflows to exactly 0.
# A large finite value, not -inf, keeps the gradient free of NaN (inf - inf).
_SELF_MASK = 1e9


def check_inputs(z_a, z_b, temperature) -> None:
  if z_a.shape != z_b.shape:
    raise ValueError(f"NT-Xent: z_a and z_b must have the same shape, got {z_a.shape} and {z_b.shape}.")
  if z_a.ndim != 2:
    raise ValueError(f"NT-Xent: expected [B, D] projections, got shape {z_a.shape}.")
  if z_a.shape[0] < 2:
    raise ValueError(f"NT-Xent: need at least 2 images for negatives to exist, got B={z_a.shape[0]}.")
  if not temperature > 0:
    raise ValueError(f"NT-Xent: temperature must be > 0, got {temperature}.")


def normalize(z: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm, in float32."""
  z = z.astype(jnp.float32)
  return z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), 1e-24))


def ntxent(z_a: jax.Array, z_b: jax.Array, *, temperature: float = 0.1) -> jax.Array:
  """Mean NT-Xent loss over all 2B anchors of a batch of positive pairs.

  Row ``i`` of ``z_a`` and row ``i`` of ``z_b`` are projections of two views of the
  same image. Every one of the 2B views is an anchor; its positive is the other view
  of its image and its negatives are the remaining 2B - 2 views. Write the train step
  so that ``z_a``/``z_b`` hold the whole *global* batch: under ``jax.jit`` with a batch
  sharded over devices, the negatives are then global.

  google-research/simclr's ``add_contrastive_loss`` sums the a->b and b->a
  cross-entropies, each averaged over B, so it returns **twice** this value.

  Args:
    z_a: ``[B, D]`` float projections of the first views (any scale: rows are
      L2-normalised here).
    z_b: ``[B, D]`` float projections of the second views.
    temperature: softmax temperature tau > 0. Computed in float32 with a
      max-subtracted log-sum-exp, so tau = 0.05 is stable.

  Returns:
    Scalar float32 loss, ``mean_i -log softmax(sim_i / tau)[positive_i]``.

  Raises:
    ValueError: on shape mismatch, rank other than 2, B < 2 or tau <= 0.

  Example:
    >>> import jax.numpy as jnp
    >>> z = jnp.eye(4)
    >>> round(float(ntxent(z, z, temperature=1.0)), 4)  # positives at cos 1, negatives at 0
    1.1654
  """
  check_inputs(z_a, z_b, temperature)
  batch = z_a.shape[0]
  z = normalize(jnp.concatenate([z_a, z_b], axis=0))  # [2B, D]
  logits = (z @ z.T) / temperature  # [2B, 2B]
  logits = logits - _SELF_MASK * jnp.eye(2 * batch, dtype=logits.dtype)
  positive = jnp.concatenate([jnp.arange(batch, 2 * batch), jnp.arange(batch)])  # [2B]
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probs, positive[:, None], axis=-1))
