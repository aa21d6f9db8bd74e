"""SwAV's model: encoder -> projection head -> L2 normalisation -> prototype scores.

Prototypes are a bias-free linear layer whose columns SwAV renormalises to unit length after
every update. Here the stored kernel is free and the model normalises its columns before use,
so the optimizer update stays a plain optax step (``jssl.tasks.swav`` explains why).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), 1e-24))


class Prototypes(nn.Module):
  """``z [N, D]`` (unit rows) -> scores ``[N, K]`` against the unit-normalised kernel columns."""

  num_prototypes: int

  @nn.compact
  def __call__(self, z):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (z.shape[-1], self.num_prototypes), jnp.float32)
    return jnp.dot(z.astype(jnp.float32), l2_normalize(kernel, axis=0))


class SwAVModel(nn.Module):
  """Encoder -> projection head -> L2 normalisation -> prototypes, as SwAV's ``resnet50.py``.

  ``images`` ``[N, S, S, C]`` (the large views) and optionally ``small`` ``[M, s, s, C]`` (the
  local crops) -> (features ``[N, F]`` of the large views, scores ``[N + M, K]``). Each
  resolution goes through the encoder as one batch (its batch norm per resolution); the head
  then runs once on the features of all crops together, so its batch norm sees every crop.
  """

  encoder: nn.Module
  head: nn.Module
  prototypes: nn.Module

  def __call__(self, images, small=None, *, train: bool):
    features = self.encoder(images, train=train)
    every = features if small is None else jnp.concatenate([features, self.encoder(small, train=train)])
    return features, self.prototypes(l2_normalize(self.head(every, train=train)))
