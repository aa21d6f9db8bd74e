"""What the reconstruction tasks share: take something away from an image, predict it back.

A subclass says how an image is corrupted (``corrupt``), what the loss is
(``objective``), how the network's output becomes an image (``predict``) and what to
report on held-out images (``quality``). The host only crops and flips (mild, so that
the target is still a natural image) and ships uint8; corruption happens inside the jit
step, per example from ``fold_in(rng, global index)``, so a step is the same on any
number of devices.

The model is ``EncoderDecoder``: the run's ResNet encoder (``model.encoder``, exported
and evaluated exactly like SimCLR's) and a light U-Net decoder that exists only for
pretraining.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from jssl.data import augment
from jssl.errors import ConfigError
from jssl.models import build_encoder, encoder_family
from jssl.models.decoder import EncoderDecoder, UNetDecoder
from jssl.tasks.base import Task

# Top-level parameter / batch-stat collections that belong to EncoderDecoder.
_MODEL_KEYS = ("encoder", "decoder")


@dataclasses.dataclass
class Forward:
  """One pass of the model over a corrupted batch."""

  images: jax.Array  # targets, float32 [B, S, S, C] in [0, 1]
  inputs: jax.Array  # what the model saw, [B, S, S, C]
  extras: dict  # task-specific, e.g. the mask or the Lab image
  output: jax.Array  # decoder output [B, S, S, K]
  features: jax.Array  # encoder features [B, F]
  model_stats: dict  # updated batch norm statistics (train) or the old ones (eval)


def model_part(tree: dict) -> dict:
  """The encoder's and decoder's entries of a params / batch_stats dict."""
  return {k: v for k, v in tree.items() if k in _MODEL_KEYS}


class ReconstructionTask(Task):
  """Base of colorization, super-resolution and inpainting; see the module docstring."""

  reads = ("augment.crop_area", "augment.crop_aspect", "augment.flip_prob")

  produces_images = True
  output_channels: int | None = None  # None: as many as the image has

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    if encoder_family(config.model.encoder) != "resnet":
      raise ConfigError(
        f"task={self.name} trains a ResNet encoder with a U-Net decoder on its feature maps; "
        f"{config.model.encoder} is not a ResNet. Use resnet_tiny, resnet18, resnet34 or resnet50."
      )
    self.image_size = config.data.image_size
    self.grayscale_to_rgb = config.data.grayscale_to_rgb
    self.crop_area, self.crop_aspect = tuple(config.augment.crop_area), tuple(config.augment.crop_aspect)
    self.flip_prob = config.augment.flip_prob
    decoder = UNetDecoder(out_channels=self.output_channels, dtype=jnp.dtype(config.model.dtype))
    self.model = EncoderDecoder(encoder=build_encoder(config), decoder=decoder)

  # --- host side

  def host_example(self, image, seed):
    """A random resized crop (``augment.crop_area``, ``crop_aspect``) and flip, as uint8."""
    return {
      "image": augment.crop_flip_uint8(
        image,
        seed,
        image_size=self.image_size,
        area_range=self.crop_area,
        aspect_range=self.crop_aspect,
        flip_prob=self.flip_prob,
      )
    }

  def channels(self, source) -> int:
    """Channels of the images the model sees (checked against the task's needs here)."""
    return 3 if self.grayscale_to_rgb else source.channels

  def batch_spec(self, batch_size: int, source) -> dict:
    image = (batch_size, self.image_size, self.image_size, self.channels(source))
    return {"image": jax.ShapeDtypeStruct(image, jnp.uint8), "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}

  # --- device side

  def init(self, rng: jax.Array, batch: dict) -> dict:
    return self.model.init(rng, jnp.zeros(batch["image"].shape, jnp.float32), train=False)

  def corrupt(self, images: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
    """``images [B, S, S, C]`` -> ``(inputs [B, S, S, C], extras)``."""
    raise NotImplementedError

  def objective(self, params, extra, forward: Forward) -> tuple[jax.Array, dict, dict]:
    """``(loss, metrics, extra)``: the loss of a forward pass, and ``extra`` as it leaves it."""
    raise NotImplementedError

  def predict(self, forward: Forward, batch_stats) -> jax.Array:
    """The reconstructed image ``[B, S, S, C]`` in [0, 1]."""
    raise NotImplementedError

  def quality(self, forward: Forward, prediction: jax.Array) -> tuple[dict, dict]:
    """``(rows, metrics)``: pictures ``name -> [N, S, S, C]`` and per-image scores ``name -> [N]``."""
    raise NotImplementedError

  def forward(self, params, batch_stats, images: jax.Array, rng: jax.Array, *, train: bool) -> Forward:
    inputs, extras = self.corrupt(images, rng)
    variables = {"params": model_part(params), "batch_stats": model_part(batch_stats)}
    if train:
      (features, output), updates = self.model.apply(variables, inputs, train=True, mutable=["batch_stats"])
      model_stats = updates["batch_stats"]
    else:
      features, output = self.model.apply(variables, inputs, train=False)
      model_stats = variables["batch_stats"]
    return Forward(
      images=images, inputs=inputs, extras=extras, output=output, features=features, model_stats=model_stats
    )

  @staticmethod
  def images_of(batch: dict) -> jax.Array:
    return batch["image"].astype(jnp.float32) / 255.0

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``."""
    forward = self.forward(params, batch_stats, self.images_of(batch), rng, train=True)
    loss, metrics, extra = self.objective(params, extra, forward)
    return loss, ({**batch_stats, **forward.model_stats}, extra, metrics, forward.features)

  def reconstruct(self, params, batch_stats, images: jax.Array, rng: jax.Array):
    """Inference-mode reconstructions of held-out ``images [N, S, S, C]``: ``(rows, metrics)``."""
    forward = self.forward(params, batch_stats, images, rng, train=False)
    return self.quality(forward, self.predict(forward, batch_stats))

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    images = self.images_of(batch)
    inputs, _ = self.corrupt(images, rng)
    return {"crop": images, "model input": inputs}
