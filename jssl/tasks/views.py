"""The base of the tasks that compare augmented views of each image (SimCLR, BYOL, SimSiam,
MoCo v3, Barlow Twins, VICReg, DINO): how the views are made and fed, nothing about the loss.

The global views are made by the host pipeline (``augment.on=host``, ``jssl.data.multicrop``)
or inside the jit step from uint8 images (``augment.on=device``, ``jssl.data.augment_jax``),
each by its own config (``config.augment`` with the ``augment.view1``/``view2`` overrides).
Local crops (multi-crop, ``augment.local_crops``) are made on the host, for the tasks that take
them (``takes_local_crops``). Views are per example and keyed by the example's seed (host) or
its index in the global batch (device), so they do not depend on how the batch is sharded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl.data import augment, augment_jax, multicrop
from jssl.data.tf_host import tf
from jssl.errors import ConfigError
from jssl.models import encoder_kwargs
from jssl.tasks.base import Task

VIEW_READS = ("augment", "model.head_hidden_dim", "model.head_out_dim", "model.head_layers")


class ViewTask(Task):
  """Views of each image for a task's loss; subclasses define ``init`` and ``loss``.

  Batches hold ``view1``, ``view2``: ``[B, S, S, C]`` float32 in [0, 1] (``augment.on=host``;
  with multi-crop also ``local``: ``[B, M, s, s, C]``) or ``image``: uint8 ``[B, H, W, C]``
  (``augment.on=device``), and ``label`` ``[B]`` int32 (-1 when the source has none; used
  only by the online probe).
  """

  reads = VIEW_READS
  takes_local_crops = False  # True: multi-crop (host-made local crops) is allowed

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    self.image_size, self.grayscale_to_rgb = config.data.image_size, config.data.grayscale_to_rgb
    self.augment_on = config.augment.on
    if self.augment_on not in ("host", "device"):
      raise ConfigError(f"augment.on={self.augment_on!r}: expected 'host' (tf.data) or 'device' (in the jit step).")
    self.crops = multicrop.multi_crop_configs(config.augment, image_size=config.data.image_size)
    if self.crops.local_crops and not self.takes_local_crops:
      raise ConfigError(
        f"augment.local_crops={self.crops.local_crops}: {self.name or type(self).__name__} compares "
        "global views and takes no local crops; set it to 0."
      )
    if self.crops.local_crops and self.augment_on != "host":
      raise ConfigError(
        f"augment.local_crops={self.crops.local_crops} with augment.on={self.augment_on!r}: local crops "
        "are made on the host; set --config.augment.on=host."
      )
    patch = encoder_kwargs(config).get("patch_size")  # ViTs: local crops must split into patches too
    if patch and self.crops.local_crops and self.crops.local_config.image_size % patch:
      raise ConfigError(
        f"augment.local_crop_size={self.crops.local_config.image_size} px (0: 3/7 of data.image_size) does "
        f"not split into {config.model.encoder}'s {patch} px patches; set augment.local_crop_size to a "
        f"multiple of {patch}."
      )

  @property
  def local_crops(self) -> int:
    """M, the local crops per image (0: none)."""
    return self.crops.local_crops

  def host_example(self, image, seed):
    """tf.data side: float32 ``[H, W, C]`` image in [0, 1] and an int ``[2]`` seed -> the views
    (``augment.on=host``), or the image as uint8 for the step to augment (``device``).

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

  def view_example(self, batch: dict) -> jax.Array:
    """Zeros shaped as one global view of ``batch`` ``[B, S, S, C]`` (for ``init``)."""
    images = batch["view1"] if self.augment_on == "host" else batch["image"]
    return jnp.zeros((images.shape[0], self.image_size, self.image_size, images.shape[-1]), jnp.float32)

  def views(self, batch: dict, rng: jax.Array) -> tuple[jax.Array, ...]:
    """The global views ``[B, S, S, C]`` of a batch: made on the host, or here from ``rng``
    (one key per example, by its index in the global batch, so sharding does not matter)."""
    if self.augment_on == "host":
      return tuple(batch[name] for name in self.crops.view_names)
    return tuple(augment_jax.batch_views(batch["image"], rng, config=self.crops.global_configs))

  def local_views(self, batch: dict) -> jax.Array | None:
    """The local crops ``[B, M, s, s, C]`` (host-made), or ``None`` without multi-crop."""
    return batch["local"] if self.local_crops else None

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    rows = {f"view{i + 1}": view for i, view in enumerate(self.views(batch, rng))}
    local = self.local_views(batch)
    for i in range(self.local_crops):
      rows[f"local crop {i + 1}"] = local[:, i]
    return rows
