"""MAE's masked-patch loss (He et al. 2021, arXiv:2111.06377) on patches made by
``jssl.ops.patches``.

The loss is the mean squared error per pixel value, averaged over the masked patches only;
with ``normalize_targets`` (MAE's ``norm_pix_loss``) each target patch is first standardised
by its own mean and variance, which the paper found gives better representations (sharper,
higher-frequency targets).
"""

import jax
import jax.numpy as jnp

NORM_EPS = 1e-6  # added to each patch's variance, as MAE's norm_pix_loss


def normalize_patches(target: jax.Array) -> jax.Array:
  """Each patch ``[..., D]`` standardised by its own mean and unbiased variance (+ ``NORM_EPS``),
  as the reference's ``target.var(dim=-1)`` (torch's default divides by D - 1; for 4x4x3
  patches that is 47 instead of 48)."""
  mean = jnp.mean(target, axis=-1, keepdims=True)
  var = jnp.var(target, axis=-1, keepdims=True, ddof=1)
  return (target - mean) / jnp.sqrt(var + NORM_EPS)


def denormalize_patches(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Inverse of ``normalize_patches`` with ``target``'s statistics: a normalised prediction
  in pixel space, as MAE's visualisation shows it."""
  mean = jnp.mean(target, axis=-1, keepdims=True)
  var = jnp.var(target, axis=-1, keepdims=True, ddof=1)
  return pred * jnp.sqrt(var + NORM_EPS) + mean


def masked_patch_loss(pred: jax.Array, target: jax.Array, mask: jax.Array, *, normalize_targets: bool) -> jax.Array:
  """MAE's loss: mean squared error per patch, averaged over the hidden patches only.

  Args:
    pred: ``[B, N, D]`` predicted patches (normalised ones if ``normalize_targets``).
    target: ``[B, N, D]`` the image's patches (``patchify``).
    mask: ``[B, N]``, 1 where a patch was hidden; visible patches count for nothing.
    normalize_targets: standardise each target patch by its own mean and variance first.

  Returns:
    float32 scalar; 0 for an all-zero mask.
  """
  pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
  if normalize_targets:
    target = normalize_patches(target)
  per_patch = jnp.mean(jnp.square(pred - target), axis=-1)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)
