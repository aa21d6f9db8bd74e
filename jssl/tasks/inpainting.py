"""Inpainting with a context encoder (Pathak et al. 2016): fill in a removed region.

Each image loses the pixels under a random mask (``inpainting.mask``: a central square,
random rectangles or random blobs; ``jssl.ops.masks``), filled with the mean colour of
the global batch (an estimate of the dataset mean that needs no pass over the data).
The network predicts the image and is scored on the removed pixels and a ring of context
around them, as the paper:

  loss = reconstruction_weight * L2 + adversarial_weight * (-log D(composite))

where L2 is the squared error on the paper's pixel scale [-1, 1] (4x that in [0, 1]; the
weights 0.999 / 0.001 were set for it) over the hole (weight 1) and the ``overlap_pixels``
px around it (weight ``overlap_weight``: the paper's 4 px ``overlapPred`` at 128 px, weighted
``overlapL2Weight`` 10; ``jssl.losses.reconstruction.context_encoder_l2``).

The decoder (``inpainting.decoder``): ``bottleneck``, the paper's, sees only the encoder's
deepest map, so whatever fills the hole passes through the encoder; ``unet`` also joins the
encoder's finer maps (skip connections), which fills holes better but lets shallow
features do it (the inpainting-quality recipe, ``configs/reconstruction_cpu.py:inpainting_quality``).

where the composite is the input with the prediction pasted into the hole, and ``D`` is
a discriminator trained in the same jit step, with its own optimizer, to tell real
images from composites (Pathak's weights 0.999 / 0.001; ``adversarial_weight=0`` turns
the adversary off and removes the discriminator). Both networks step from the same
parameters: the generator's gradient is taken with ``D`` fixed, ``D``'s with the
composite fixed. The prediction is a residual over the mean fill, so the untrained
model is exactly the mean-fill baseline that the held-out masked PSNR is compared with.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import image_metrics, optim
from jssl.errors import ConfigError
from jssl.losses.reconstruction import context_encoder_l2, discriminator_loss, generator_loss
from jssl.models.decoder import Discriminator
from jssl.ops import masks
from jssl.tasks.base import global_indices
from jssl.tasks.reconstruction import Forward, ReconstructionTask

_DISCRIMINATOR = "discriminator"
DECODERS = ("bottleneck", "unet")


class Inpainting(ReconstructionTask):
  name = "inpainting"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.mask = "center"  # center | rectangles | blobs
    c.area_fraction = 0.25  # of the image removed (center: a square of half the side)
    c.max_rectangles = 4  # rectangles: 1..this many per image
    c.decoder = "bottleneck"  # bottleneck (the paper's: no skip connections) | unet
    c.overlap_pixels = 4  # the context ring around the hole the loss also covers (the paper's at 128 px)
    c.overlap_weight = 10.0  # its weight in the L2 (the paper's overlapL2Weight)
    c.reconstruction_weight = 0.999
    c.adversarial_weight = 0.001  # 0 turns the discriminator off
    c.discriminator_widths = (32, 64, 128)  # strided 3x3 conv widths
    c.discriminator_lr = 2e-4  # Adam, DCGAN's settings
    c.discriminator_b1 = 0.5
    return c

  def __init__(self, config, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    self.settings = config.inpainting
    masks.check_settings(self.settings.mask, self.image_size, self.settings.area_fraction, self.settings.max_rectangles)
    s = self.settings
    if s.decoder not in DECODERS:
      raise ConfigError(f"inpainting.decoder={s.decoder!r}: choose one of {', '.join(DECODERS)}.")
    if int(s.overlap_pixels) != s.overlap_pixels or s.overlap_pixels < 0:
      raise ConfigError(f"inpainting.overlap_pixels={s.overlap_pixels}: give a whole number of pixels, >= 0.")
    if not s.overlap_weight >= 0:
      raise ConfigError(f"inpainting.overlap_weight={s.overlap_weight}: use a weight >= 0.")
    self.model = self.model.clone(decoder=self.model.decoder.clone(skips=s.decoder == "unet"))
    self.adversarial = self.settings.adversarial_weight > 0
    self.discriminator = Discriminator(widths=tuple(self.settings.discriminator_widths))

  def init(self, rng, batch):
    model_rng, discriminator_rng = jax.random.split(rng)
    variables = super().init(model_rng, batch)
    if not self.adversarial:
      return variables
    images = jnp.zeros(batch["image"].shape, jnp.float32)
    discriminator = self.discriminator.init(discriminator_rng, images)["params"]
    return {**variables, "params": {**variables["params"], _DISCRIMINATOR: discriminator}}

  def optimizer(self, tx):
    """The run's optimizer for the encoder-decoder; Adam of its own for the discriminator."""
    if not self.adversarial:
      return tx
    discriminator_tx = optax.adam(self.settings.discriminator_lr, b1=self.settings.discriminator_b1)

    return optim.route(
      {"model": tx, _DISCRIMINATOR: discriminator_tx},
      lambda path: _DISCRIMINATOR if path[0] == _DISCRIMINATOR else "model",
    )

  def corrupt(self, images, rng):
    mask = masks.batch_masks(
      rng,
      global_indices(images.shape[0]),
      image_size=self.image_size,
      kind=self.settings.mask,
      area_fraction=self.settings.area_fraction,
      max_rectangles=self.settings.max_rectangles,
    )
    fill = jax.lax.stop_gradient(jnp.mean(images, axis=(0, 1, 2)))
    return images * (1.0 - mask) + fill * mask, {"mask": mask}

  @staticmethod
  def composite(forward: Forward) -> jax.Array:
    """The input with the prediction (a residual over the fill) pasted into the hole."""
    mask = forward.extras["mask"]
    return forward.images * (1.0 - mask) + (forward.inputs + forward.output) * mask

  def _score(self, discriminator_params, images):
    return self.discriminator.apply({"params": discriminator_params}, images)

  def objective(self, params, extra, forward: Forward):
    mask = forward.extras["mask"]
    ring = masks.ring_around(mask, int(self.settings.overlap_pixels))
    reconstruction = context_encoder_l2(
      forward.inputs + forward.output, forward.images, mask, ring, ring_weight=self.settings.overlap_weight
    )
    loss = self.settings.reconstruction_weight * reconstruction
    metrics = {"reconstruction_loss": reconstruction}
    if self.adversarial:
      adversarial = generator_loss(self._score(params[_DISCRIMINATOR], self.composite(forward)))
      loss = loss + self.settings.adversarial_weight * adversarial
      metrics["adversarial_loss"] = adversarial
    return loss, metrics, extra

  def loss_and_grads(self, params, batch_stats, extra, batch, rng, step):
    """The generator's gradient with the discriminator fixed, and the discriminator's
    (on real crops against the generator's composites, held fixed) in one pass."""
    if not self.adversarial:
      return super().loss_and_grads(params, batch_stats, extra, batch, rng, step)
    discriminator = params[_DISCRIMINATOR]
    images = self.images_of(batch)

    def generator_objective(generator):
      both = {**generator, _DISCRIMINATOR: discriminator}
      forward = self.forward(both, batch_stats, images, rng, train=True)
      loss, metrics, new_extra = self.objective(both, extra, forward)
      return loss, (
        {**batch_stats, **forward.model_stats},
        new_extra,
        metrics,
        forward.features,
        self.composite(forward),
      )

    generator = {k: v for k, v in params.items() if k != _DISCRIMINATOR}
    (loss, (new_stats, new_extra, metrics, features, fake)), grads = jax.value_and_grad(
      generator_objective, has_aux=True
    )(generator)

    def discriminator_objective(discriminator):
      real_logits = self._score(discriminator, images)
      fake_logits = self._score(discriminator, jax.lax.stop_gradient(fake))
      accuracy = (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0)) / 2
      return discriminator_loss(real_logits, fake_logits), accuracy

    (d_loss, d_accuracy), d_grads = jax.value_and_grad(discriminator_objective, has_aux=True)(discriminator)
    metrics = dict(metrics, discriminator_loss=d_loss, discriminator_accuracy=d_accuracy)
    return (loss, (new_stats, new_extra, metrics, features)), {**grads, _DISCRIMINATOR: d_grads}

  def predict(self, forward: Forward, batch_stats):
    return jnp.clip(self.composite(forward), 0.0, 1.0)

  def quality(self, forward: Forward, prediction):
    mask, target, mean_fill = forward.extras["mask"], forward.images, forward.inputs
    rows = {
      "input (mean fill)": mean_fill,
      "prediction": prediction,
      "target": target,
      "mask": jnp.broadcast_to(mask, target.shape),
    }
    metrics = {
      "masked_psnr": image_metrics.masked_psnr(prediction, target, mask),
      "masked_psnr_mean_fill": image_metrics.masked_psnr(mean_fill, target, mask),
    }
    return rows, metrics
