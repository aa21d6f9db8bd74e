"""SimCLR (Chen et al. 2020): two augmented views per image, NT-Xent over the global batch.

The views are made by the host pipeline (``host_example``, ``augment.on=host``) or inside
the jit step from uint8 images (``augment.on=device``, ``jssl.data.augment_jax``), each
by its own config (``config.augment`` with the ``augment.view1``/``view2`` overrides,
``jssl.data.multicrop``); the step concatenates both views into one ``[2B, H, W, C]``
batch so that batch norm sees all 2B images at once, as in the paper, and ``jax.jit`` over
a batch sharded on every device makes both the BN statistics and the negatives global.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import tensorflow as tf

from jssl.data import augment, augment_jax, multicrop
from jssl.errors import ConfigError
from jssl.grad_cache import grad_cache
from jssl.losses import ntxent, ntxent_chunked
from jssl.models import EncoderWithHead, ProjectionHead, build_encoder
from jssl.tasks.base import Task


class SimCLR(Task):
  """The SimCLR pretext task.

  Batches hold ``view1``, ``view2``: ``[B, S, S, C]`` float32 in [0, 1] (``augment.on=host``)
  or ``image``: uint8 ``[B, H, W, C]`` (``augment.on=device``), and ``label``
  ``[B]`` int32 (-1 when the source has none; used only by the online probe).
  """

  name = "simclr"
  reads = ("augment", "model.head_hidden_dim", "model.head_out_dim", "model.head_layers")

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
    self.image_size, self.grayscale_to_rgb = config.data.image_size, config.data.grayscale_to_rgb
    self.augment_on = config.augment.on
    if self.augment_on not in ("host", "device"):
      raise ConfigError(f"augment.on={self.augment_on!r}: expected 'host' (tf.data) or 'device' (in the jit step).")
    self.crops = multicrop.multi_crop_configs(config.augment, image_size=config.data.image_size)
    if self.crops.local_crops:
      raise ConfigError(
        f"augment.local_crops={self.crops.local_crops}: simclr contrasts two views and takes no local "
        "crops; set it to 0."
      )
    head = ProjectionHead(
      hidden_dim=config.model.head_hidden_dim,
      out_dim=config.model.head_out_dim,
      num_layers=config.model.head_layers,
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = EncoderWithHead(encoder=build_encoder(config), head=head)

  def host_example(self, image, seed):
    """tf.data side: float32 ``[H, W, C]`` image in [0, 1] and an int ``[2]`` seed -> the two
    views (``augment.on=host``), or the image as uint8 for the step to augment (``device``).

    In device mode images of varying size (image folders) are centre-cropped and resized to
    ``device_input_size``: a batch needs one shape, and crops taken from it keep twice the
    view resolution. Fixed-size sources (Fashion-MNIST, TFDS CIFAR, synthetic) pass as they are.
    """
    if self.augment_on == "host":
      return multicrop.multi_crop_views(image, seed, crops=self.crops)
    if image.shape[0] is None or image.shape[1] is None:
      image = augment.center_resize(image, image_size=self.device_input_size)
    # uint8 is a quarter of float32 to copy to the devices; the step divides by 255.
    return {"image": tf.image.convert_image_dtype(image, tf.uint8, saturate=True)}

  @property
  def device_input_size(self) -> int:
    """Side of the uint8 images shipped in device mode when the source's size varies."""
    return 2 * self.image_size

  def batch_spec(self, batch_size: int, source) -> dict:
    """Global shapes of the batches ``host_example`` makes, for a ``jssl.data.Source``."""
    channels = 3 if self.grayscale_to_rgb else source.channels
    label = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    if self.augment_on == "host":
      return {**multicrop.multi_crop_spec(self.crops, batch_size=batch_size, channels=channels), "label": label}
    height, width = source.image_shape[:2] if source.image_shape else (self.device_input_size,) * 2
    return {"image": jax.ShapeDtypeStruct((batch_size, height, width, channels), jnp.uint8), "label": label}

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Variables ``{"params", "batch_stats"}`` for views of the images in ``batch``."""
    view = batch["view1"] if self.augment_on == "host" else batch["image"]
    size = (view.shape[0], self.image_size, self.image_size, view.shape[-1])
    return self.model.init(rng, jnp.zeros(size, jnp.float32), train=False)

  def views(self, batch: dict, rng: jax.Array):
    """The two views ``[B, S, S, C]`` of a batch: made on the host, or here from ``rng``
    (one key per example, by its index in the global batch, so sharding does not matter)."""
    if self.augment_on == "host":
      return batch["view1"], batch["view2"]
    return augment_jax.batch_views(batch["image"], rng, config=self.crops.global_configs)

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    return {f"view{i + 1}": view for i, view in enumerate(self.views(batch, rng))}

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
