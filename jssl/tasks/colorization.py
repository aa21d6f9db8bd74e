"""Colorization as a pretext task (Zhang, Isola & Efros 2016): predict colour from lightness.

The model sees the image with its colour removed (``gray_image``: CIE Lab lightness L
with a = b = 0, as an RGB image, so the encoder keeps the RGB input it is exported with)
and predicts the chrominance ab. Two losses (``colorization.loss``):

* ``l2``: squared error on ab / 110. Simple, but it averages plausible colours into grey.
* ``classification``: cross-entropy over quantised in-gamut ab bins with soft targets
  and class rebalancing, so that rare saturated colours are not drowned by the common
  unsaturated ones. The rebalancing needs the bins' empirical distribution; it is kept as
  a running average of each global batch's histogram (the task's state that is not
  trained, ``extra["ab_prior"]``, checkpointed with the run), so it needs no pass over the data. The
  colour is read back with Zhang's annealed mean (temperature 0.38).

Needs a colour source (``sample_photos``, a TFDS colour dataset, an image folder).
"""

import jax
import jax.numpy as jnp
import ml_collections

from jssl import image_metrics
from jssl.errors import ConfigError
from jssl.losses import colorization as losses
from jssl.ops import color
from jssl.tasks.reconstruction import Forward, ReconstructionTask

_AB_SCALE = 110.0  # |a|, |b| < 110 for sRGB colours: ab / 110 is in (-1, 1)
_PRIOR = "ab_prior"


class Colorization(ReconstructionTask):
  name = "colorization"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.loss = "l2"  # l2 | classification
    c.grid = 10  # classification: ab bin size
    c.neighbours = 5  # soft targets over this many nearest bins ...
    c.sigma = 5.0  # ... with this Gaussian width (ab units); also the prior's smoothing
    c.rebalance_lambda = 0.5  # mix of the prior with uniform; 1 = no rebalancing
    c.prior_momentum = 0.99  # running average of the batches' ab histograms
    c.temperature = 0.38  # annealed-mean decoding
    return c

  def __init__(self, config, *, mesh=None, source=None):
    self.settings = config.colorization
    if self.settings.loss not in ("l2", "classification"):
      raise ConfigError(f"colorization.loss must be 'l2' or 'classification', got {self.settings.loss!r}.")
    self.classification = self.settings.loss == "classification"
    self.bins = jnp.asarray(losses.ab_bins(self.settings.grid)) if self.classification else None
    self.output_channels = len(self.bins) if self.classification else 2
    super().__init__(config, mesh=mesh, source=source)

  def channels(self, source) -> int:
    if source.channels != 3:
      raise ConfigError(
        f"task=colorization needs colour images; data.source={self.config.data.source!r} has "
        f"{source.channels} channel(s). Use a colour source, e.g. data.source=sample_photos."
      )
    return 3

  def init(self, rng, batch):
    variables = super().init(rng, batch)
    if not self.classification:
      return variables
    return {**variables, "extra": {_PRIOR: jnp.full((len(self.bins),), 1.0 / len(self.bins))}}

  def corrupt(self, images, rng):
    return color.gray_image(images), {"lab": color.rgb_to_lab(images)}

  def objective(self, params, extra, forward: Forward):
    ab = forward.extras["lab"][..., 1:]
    if not self.classification:
      return losses.ab_l2_loss(forward.output, ab / _AB_SCALE), {}, extra
    s = self.settings
    nearest = losses.nearest_bins(ab, self.bins, neighbours=s.neighbours, sigma=s.sigma)
    histogram = losses.ab_histogram(ab, self.bins, nearest=nearest)
    prior = s.prior_momentum * extra[_PRIOR] + (1 - s.prior_momentum) * histogram
    weights = losses.rebalancing_weights(jax.lax.stop_gradient(prior), self.bins, lam=s.rebalance_lambda, sigma=s.sigma)
    loss = losses.classification_loss(
      forward.output, ab, self.bins, weights, neighbours=s.neighbours, sigma=s.sigma, nearest=nearest
    )
    return loss, {}, {**extra, _PRIOR: prior}

  def predict_ab(self, forward: Forward) -> jax.Array:
    if not self.classification:
      return forward.output * _AB_SCALE
    return losses.annealed_mean(forward.output, self.bins, temperature=self.settings.temperature)

  def predict(self, forward: Forward, batch_stats):
    lightness = forward.extras["lab"][..., :1]
    return color.lab_to_rgb(jnp.concatenate([lightness, self.predict_ab(forward)], axis=-1))

  def quality(self, forward: Forward, prediction):
    ab = forward.extras["lab"][..., 1:]
    gray, target = forward.inputs, forward.images

    def ab_rmse(predicted_ab):  # per image, in ab units
      return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(predicted_ab - ab), axis=-1), axis=(1, 2)))

    rows = {"input (gray)": gray, "prediction": prediction, "target": target}
    metrics = {
      "ab_rmse": ab_rmse(self.predict_ab(forward)),
      "ab_rmse_gray": ab_rmse(jnp.zeros_like(ab)),
      "psnr": image_metrics.psnr(prediction, target),
      "psnr_gray": image_metrics.psnr(gray, target),
      "colourfulness": image_metrics.colourfulness(prediction),
      "colourfulness_target": image_metrics.colourfulness(target),
    }
    return rows, metrics
