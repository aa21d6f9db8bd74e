"""Pixel and adversarial losses of the reconstruction tasks (super-resolution, inpainting).

All take float arrays ``[N, H, W, C]`` and return a scalar mean; the adversarial ones
take discriminator logits ``[N]`` (positive = "real").
"""

import jax
import jax.numpy as jnp


def pixel_loss(pred: jax.Array, target: jax.Array, *, kind: str = "l2") -> jax.Array:
  """Mean absolute (``"l1"``) or squared (``"l2"``) error over every element."""
  if kind == "l1":
    return jnp.mean(jnp.abs(pred - target))
  if kind == "l2":
    return jnp.mean(jnp.square(pred - target))
  raise ValueError(f"Pixel loss must be 'l1' or 'l2', got {kind!r}.")


def context_encoder_l2(
  pred: jax.Array, target: jax.Array, hole: jax.Array, ring: jax.Array, *, ring_weight: float
) -> jax.Array:
  """Pathak et al.'s reconstruction loss: squared error on the paper's pixel scale, [-1, 1]
  (``pred`` and ``target`` come in [0, 1]: 4x the squared error there), over the ``hole``
  (weight 1) and the ``ring`` of context around it (weight ``ring_weight``, the paper's
  ``overlapL2Weight`` 10), averaged over the elements of hole and ring (pixels x C).

  ``hole``, ``ring`` ``[N, H, W, 1]`` 0 / 1 (``jssl.ops.masks.ring_around``); pixels in
  neither contribute nothing. An empty hole and ring give 0.
  """
  squared = jnp.square(2.0 * (pred - target))
  weights = hole + ring_weight * ring
  count = jnp.sum(hole + ring) * pred.shape[-1]
  return jnp.sum(squared * weights) / jnp.maximum(count, 1.0)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """``-log D(real) - log(1 - D(fake))``, averaged: the discriminator's binary cross-entropy."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """``-log D(fake)``, averaged: the non-saturating generator loss (Goodfellow et al. 2014),
  which gives strong gradients while the discriminator still wins easily."""
  return jnp.mean(jax.nn.softplus(-fake_logits))
