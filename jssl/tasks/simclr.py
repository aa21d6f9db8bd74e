"""SimCLR (Chen et al. 2020): two augmented views per image, NT-Xent over the global batch.

The views come from ``jssl.tasks.views.ViewTask`` (host or device augmentation, per-view
settings); the step concatenates both views into one ``[2B, H, W, C]`` batch so that batch
norm sees all 2B images at once, as in the paper, and ``jax.jit`` over a batch sharded on
every device makes both the BN statistics and the negatives global.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from jssl.grad_cache import grad_cache
from jssl.losses import ntxent, ntxent_chunked
from jssl.models import EncoderWithHead, ProjectionHead, build_encoder
from jssl.tasks.views import ViewTask


class SimCLR(ViewTask):
  """The SimCLR pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "simclr"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.temperature = 0.5  # NT-Xent's tau
    c.block_size = 0  # > 0: ntxent_chunked with key blocks of this size (bounded memory)
    c.microbatches = 1  # > 1: gradient caching (exact contrastive gradient; BN per micro-batch)
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.simclr
    if s.block_size > 0:
      # Memory O(local x block) per device instead of O(global x global); same value and gradient.
      self.contrastive_loss = functools.partial(
        ntxent_chunked, temperature=s.temperature, block_size=s.block_size, mesh=mesh
      )
    else:
      self.contrastive_loss = functools.partial(ntxent, temperature=s.temperature)
    self.microbatches = s.microbatches
    head = ProjectionHead(
      hidden_dim=config.model.head_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=config.model.head_layers,
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = EncoderWithHead(encoder=build_encoder(config), head=head)

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Variables ``{"params", "batch_stats"}`` for views of the images in ``batch``."""
    return self.model.init(rng, self.view_example(batch), train=False)

  def _embed(self, params, batch_stats, view1, view2):
    """Both views through one BN pass: ``z [b, 2, D]``, view-1 features ``[b, F]``, new BN stats."""
    images = jnp.concatenate([view1, view2], axis=0)
    (features, projections), updates = self.model.apply(
      {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
    )
    z = jnp.stack(jnp.split(projections, 2, axis=0), axis=1)
    return z, jnp.split(features, 2, axis=0)[0], updates["batch_stats"]

  def _contrastive(self, z):
    return self.contrastive_loss(z[:, 0], z[:, 1])

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """Returns ``loss, (new_batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1."""
    z, features, batch_stats = self._embed(params, batch_stats, *self.views(batch, rng))
    return self._contrastive(z), (batch_stats, extra, {}, features)

  def loss_and_grads(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``((loss, (batch_stats, extra, metrics, features)), grads)``; with ``simclr.microbatches > 1``
    the exact full-batch contrastive gradient by gradient caching (BN statistics then per
    micro-batch)."""
    if self.microbatches == 1:
      return super().loss_and_grads(params, batch_stats, extra, batch, rng, step)

    def embed(params, batch_stats, views):  # views [b, 2, S, S, C]
      return self._embed(params, batch_stats, views[:, 0], views[:, 1])

    views = jnp.stack(self.views(batch, rng), axis=1)
    loss, grads, features, batch_stats = grad_cache(
      embed, self._contrastive, params, batch_stats, views, microbatches=self.microbatches
    )
    return (loss, (batch_stats, extra, {}, features)), grads
