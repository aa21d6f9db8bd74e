"""Super-resolution as a pretext task: recover an image from a ×2 or ×4 smaller copy.

Pairs are made in the step: the crop is downsampled by ``superres.factor`` (``area``:
the mean of each factor × factor block; ``bicubic``: antialiased bicubic), upsampled back
with bicubic interpolation, and the network predicts the residual between that and the
original (VDSR, Kim et al. 2016): the decoder's zero-initialised last layer makes the
untrained model exactly the bicubic baseline, which training must beat. Loss L1 or L2
(``superres.loss``). Works on grayscale sources too.
"""

import jax
import jax.numpy as jnp
import ml_collections

from jssl import image_metrics
from jssl.errors import ConfigError
from jssl.losses.reconstruction import pixel_loss
from jssl.tasks.reconstruction import Forward, ReconstructionTask


def downsample(images: jax.Array, factor: int, method: str) -> jax.Array:
  """``[N, S, S, C] -> [N, S / factor, S / factor, C]``."""
  n, size, _, c = images.shape
  if method == "area":
    return images.reshape(n, size // factor, factor, size // factor, factor, c).mean(axis=(2, 4))
  if method == "bicubic":
    return jax.image.resize(images, (n, size // factor, size // factor, c), "cubic", antialias=True)
  raise ConfigError(f"superres.downsample must be 'area' or 'bicubic', got {method!r}.")


def bicubic_upsample(images: jax.Array, size: int) -> jax.Array:
  """``[N, s, s, C] -> [N, size, size, C]`` clipped to [0, 1]: the baseline and the model's input."""
  n, _, _, c = images.shape
  return jnp.clip(jax.image.resize(images, (n, size, size, c), "cubic"), 0.0, 1.0)


class SuperResolution(ReconstructionTask):
  name = "superres"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.factor = 2  # 2 or 4 (any factor dividing data.image_size works)
    c.downsample = "bicubic"  # area | bicubic
    c.loss = "l1"  # l1 | l2
    return c

  def __init__(self, config, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    self.settings = config.superres
    factor = self.settings.factor
    if factor < 2 or self.image_size % factor:
      raise ConfigError(f"superres.factor={factor} must be >= 2 and divide data.image_size={self.image_size}.")
    downsample(jnp.zeros((1, factor, factor, 1)), factor, self.settings.downsample)  # validates the method
    pixel_loss(jnp.zeros(()), jnp.zeros(()), kind=self.settings.loss)

  def corrupt(self, images, rng):
    low = downsample(images, self.settings.factor, self.settings.downsample)
    return bicubic_upsample(low, self.image_size), {}

  def objective(self, params, extra, forward: Forward):
    prediction = forward.inputs + forward.output
    return pixel_loss(prediction, forward.images, kind=self.settings.loss), {}, extra

  def predict(self, forward: Forward, batch_stats):
    return jnp.clip(forward.inputs + forward.output, 0.0, 1.0)

  def quality(self, forward: Forward, prediction):
    bicubic, target = forward.inputs, forward.images
    rows = {f"bicubic x{self.settings.factor}": bicubic, "prediction": prediction, "target": target}
    metrics = {
      "psnr": image_metrics.psnr(prediction, target),
      "psnr_bicubic": image_metrics.psnr(bicubic, target),
      "ssim": image_metrics.ssim(prediction, target),
      "ssim_bicubic": image_metrics.ssim(bicubic, target),
    }
    return rows, metrics
