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


def masked_l2(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean squared error over the masked pixels only (Pathak et al.'s reconstruction loss).

  ``mask [N, H, W, 1]`` is 1 where a pixel was removed; pixels with mask 0 contribute
  nothing, whatever the prediction there. The mean is over masked elements (pixels x C),
  so the loss's scale does not depend on how much is masked. An all-zero mask gives 0.
  """
  squared = jnp.square(pred - target) * mask
  count = jnp.sum(mask) * pred.shape[-1]
  return jnp.sum(squared) / jnp.maximum(count, 1.0)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """``-log D(real) - log(1 - D(fake))``, averaged: the discriminator's binary cross-entropy."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """``-log D(fake)``, averaged: the non-saturating generator loss (Goodfellow et al. 2014),
  which gives strong gradients while the discriminator still wins easily."""
  return jnp.mean(jax.nn.softplus(-fake_logits))
