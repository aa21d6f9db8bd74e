"""SimCLR (Chen et al. 2020): two augmented views per image, NT-Xent over the global batch.

The host pipeline makes the views (``host_example``); the step concatenates both views
into one ``[2B, H, W, C]`` batch so that batch norm sees all 2B images at once, as in the
paper, and ``jax.jit`` over a batch sharded on every device makes both the BN statistics
and the negatives global.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl.data import augment
from jssl.grad_cache import grad_cache
from jssl.losses import ntxent, ntxent_chunked
from jssl.models import ProjectionHead, make_encoder


class SimCLRModel(nn.Module):
  """Encoder followed by the projection head: images -> (features, projections)."""

  encoder: nn.Module
  head: nn.Module

  def __call__(self, images, *, train: bool):
    features = self.encoder(images, train=train)
    return features, self.head(features, train=train)


def build_encoder(config: ml_collections.ConfigDict) -> nn.Module:
  """The encoder described by ``config.model`` (shared by every task and by evaluation)."""
  return make_encoder(config.model.encoder, width_multiplier=config.model.width_multiplier,
                      stem=config.model.stem, dtype=jnp.dtype(config.model.dtype))


class SimCLR:
  """The SimCLR pretext task.

  Batches hold ``view1``, ``view2``: ``[B, S, S, C]`` float32 in [0, 1], and ``label``
  ``[B]`` int32 (-1 when the source has none; used only by the online probe).
  """

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None):
    if config.loss.block_size > 0:
      # Memory O(local x block) per device instead of O(global x global); same value and gradient.
      self.contrastive_loss = functools.partial(ntxent_chunked, temperature=config.loss.temperature,
                                                block_size=config.loss.block_size, mesh=mesh)
    else:
      self.contrastive_loss = functools.partial(ntxent, temperature=config.loss.temperature)
    self.microbatches = config.train.microbatches
    self.augment_config = augment.AugmentConfig(image_size=config.data.image_size, **config.augment)
    head = ProjectionHead(hidden_dim=config.model.head_hidden_dim, out_dim=config.model.head_out_dim,
                          num_layers=config.model.head_layers, dtype=jnp.dtype(config.model.dtype))
    self.model = SimCLRModel(encoder=build_encoder(config), head=head)

  def host_example(self, image, seed):
    """tf.data side: float32 ``[H, W, C]`` image and an int ``[2]`` seed -> the two views."""
    view1, view2 = augment.two_views(image, seed, config=self.augment_config)
    return {"view1": view1, "view2": view2}

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Variables ``{"params", "batch_stats"}`` for images shaped like ``batch["view1"]``."""
    return self.model.init(rng, batch["view1"], train=False)

  def _embed(self, params, batch_stats, view1, view2):
    """Both views through one BN pass: ``z [b, 2, D]``, view-1 features ``[b, F]``, new BN stats."""
    images = jnp.concatenate([view1, view2], axis=0)
    (features, projections), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"])
    z = jnp.stack(jnp.split(projections, 2, axis=0), axis=1)
    return z, jnp.split(features, 2, axis=0)[0], updates["batch_stats"]

  def _contrastive(self, z):
    return self.contrastive_loss(z[:, 0], z[:, 1])

  def loss(self, params, batch_stats, batch: dict, rng: jax.Array):
    """Returns ``loss, (new_batch_stats, metrics, features)``; features ``[B, F]`` of view 1."""
    del rng  # Augmentation happens on the host; the model itself is deterministic.
    z, features, batch_stats = self._embed(params, batch_stats, batch["view1"], batch["view2"])
    return self._contrastive(z), (batch_stats, {}, features)

  def loss_and_grads(self, params, batch_stats, batch: dict, rng: jax.Array):
    """``((loss, (batch_stats, metrics, features)), grads)``; with ``train.microbatches > 1``
    the exact full-batch contrastive gradient by gradient caching (BN statistics then per
    micro-batch)."""
    if self.microbatches == 1:
      return jax.value_and_grad(self.loss, has_aux=True)(params, batch_stats, batch, rng)

    def embed(params, batch_stats, views):  # views [b, 2, S, S, C]
      return self._embed(params, batch_stats, views[:, 0], views[:, 1])

    views = jnp.stack([batch["view1"], batch["view2"]], axis=1)
    loss, grads, features, batch_stats = grad_cache(embed, self._contrastive, params, batch_stats, views,
                                                    microbatches=self.microbatches)
    return (loss, (batch_stats, {}, features)), grads

  @staticmethod
  def encoder_variables(params, batch_stats) -> dict:
    """The encoder's part of the model variables: what evaluation and export use."""
    return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}
