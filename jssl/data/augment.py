"""SimCLR view augmentation as TensorFlow ops for a ``tf.data`` pipeline.

Follows google-research/simclr ``data_util.py`` (v2 defaults), in this order:
random resized crop -> horizontal flip -> colour jitter (random order) -> grayscale
-> Gaussian blur -> solarize (BYOL's and DINO's order; off by default, as in SimCLR).
Every random decision draws from its own seed, split with
``tf.random.experimental.stateless_split`` from the one ``[2]`` seed passed in, and
only stateless ops are used, so a view is a pure function of ``(image, seed)``: the
same on every run, every host and under any ``tf.data`` parallelism.

All functions work eagerly and in graph mode (inside ``tf.data.Dataset.map``); the
random branches are ``tf.cond``/``tf.switch_case`` on stateless draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jssl.data.tf_host import tf
from jssl.errors import ConfigError

# SimCLR's min_object_covered: with the whole image as the object it floors every crop's area at 0.1.
SIMCLR_MIN_COVERED = 0.1


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Parameters of the SimCLR view augmentation (defaults: SimCLR v2, strength 1).

  Attributes:
    image_size: output side S (views are ``[S, S, C]``).
    crop_area: range of the crop's area as a fraction of the image's.
    crop_min_covered: the least fraction of the image a crop covers: SimCLR's (TF's
      ``min_object_covered``, the whole image being the object), which floors the crop's
      area at ``max(crop_area[0], crop_min_covered)``. 0 is torchvision's
      ``RandomResizedCrop`` rule: only ``crop_area`` bounds the crop (multi-crop's local
      crops, ``jssl.data.multicrop``).
    crop_aspect: range of the crop's width / height.
    flip_prob: probability of a horizontal flip.
    jitter_strength: s; brightness, contrast, saturation strengths are 0.8*s and the
      hue strength 0.2*s (clamped to 0.5, the most ``adjust_hue`` can mean).
    jitter_prob: probability of applying the colour jitter at all.
    grayscale_prob: probability of converting to grayscale.
    blur_prob: probability of a Gaussian blur (0 turns it off).
    blur_sigma: range of the blur's standard deviation, in output pixels.
    blur_kernel_fraction: kernel side ~ image_size * fraction, rounded to odd >= 3.
    solarize_prob: probability of solarizing (``x -> 1 - x`` where ``x >= 0.5``), after
      the blur (BYOL's second view: 0.2).
  """

  image_size: int = 32
  crop_area: tuple[float, float] = (0.08, 1.0)
  crop_min_covered: float = SIMCLR_MIN_COVERED
  crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  jitter_strength: float = 1.0
  jitter_prob: float = 0.8
  grayscale_prob: float = 0.2
  blur_prob: float = 0.5
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  blur_kernel_fraction: float = 0.1
  solarize_prob: float = 0.0

  def __post_init__(self):
    # Configs loaded from JSON/YAML carry lists; store hashable tuples of floats.
    for name in ("crop_area", "crop_aspect", "blur_sigma"):
      value = getattr(self, name)
      if len(value) != 2:
        raise ConfigError(f"AugmentConfig.{name} must be a (low, high) pair, got {value!r}.")
      object.__setattr__(self, name, (float(value[0]), float(value[1])))
    _validate(self)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> AugmentConfig:
    """Builds a config from a mapping of (a subset of) the field names."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ConfigError(f"AugmentConfig: unknown field(s) {unknown}; known: {sorted(known)}.")
    return cls(**dict(d))

  @property
  def blur_kernel_size(self) -> int:
    """Odd kernel side >= 3 nearest to ``image_size * blur_kernel_fraction``."""
    side = max(3, int(round(self.image_size * self.blur_kernel_fraction)))
    return side if side % 2 == 1 else side + 1


def _validate(config: AugmentConfig) -> None:
  """Raises ValueError naming the first field that is out of range."""
  if isinstance(config.image_size, bool) or not isinstance(config.image_size, int) or config.image_size <= 0:
    raise ConfigError(f"AugmentConfig.image_size must be a positive int, got {config.image_size!r}.")
  for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
    p = getattr(config, name)
    if not 0.0 <= p <= 1.0:
      raise ConfigError(f"AugmentConfig.{name} must be in [0, 1], got {p!r}.")
  lo, hi = config.crop_area
  if not 0.0 < lo <= hi <= 1.0:
    raise ConfigError(f"AugmentConfig.crop_area must satisfy 0 < low <= high <= 1, got {config.crop_area!r}.")
  if not 0.0 <= config.crop_min_covered <= 1.0:
    raise ConfigError(f"AugmentConfig.crop_min_covered must be in [0, 1], got {config.crop_min_covered!r}.")
  lo, hi = config.crop_aspect
  if not 0.0 < lo <= hi:
    raise ConfigError(f"AugmentConfig.crop_aspect must satisfy 0 < low <= high, got {config.crop_aspect!r}.")
  if not config.jitter_strength >= 0.0:
    raise ConfigError(f"AugmentConfig.jitter_strength must be >= 0, got {config.jitter_strength!r}.")
  lo, hi = config.blur_sigma
  if not 0.0 < lo <= hi:
    raise ConfigError(f"AugmentConfig.blur_sigma must satisfy 0 < low <= high, got {config.blur_sigma!r}.")
  if not config.blur_kernel_fraction >= 0.0:
    raise ConfigError(f"AugmentConfig.blur_kernel_fraction must be >= 0, got {config.blur_kernel_fraction!r}.")


# --------------------------------------------------------------------------- helpers


def _split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
  """Splits a ``[2]`` int32/int64 seed into ``num`` independent int64 ``[2]`` seeds.

  The cast first makes int32 and int64 seeds of equal value give equal splits
  (``stateless_split`` draws integers of the seed's own dtype).
  """
  seed = tf.cast(seed, tf.int64)
  return tf.unstack(tf.random.experimental.stateless_split(seed, num=num), num=num)


def _coin(seed: tf.Tensor, prob: float) -> tf.Tensor:
  """Scalar bool, True with probability ``prob`` (a stateless Bernoulli draw)."""
  return tf.random.stateless_uniform([], seed=seed) < prob


def _random_apply(fn: Callable[[tf.Tensor], tf.Tensor], image: tf.Tensor, *, prob: float, seed: tf.Tensor) -> tf.Tensor:
  """``fn(image)`` with probability ``prob``, else ``image`` (graph-safe).

  Probabilities 0 and 1 are decided in Python so that switched-off steps cost nothing.
  """
  if prob <= 0.0:
    return image
  if prob >= 1.0:
    return fn(image)
  return tf.cond(_coin(seed, prob), lambda: fn(image), lambda: image)


def _channels(image: tf.Tensor) -> int:
  """The static channel count of an ``[H, W, C]`` image (1 or 3)."""
  if image.shape.rank != 3 or image.shape[-1] not in (1, 3):
    raise ConfigError(f"expected an [H, W, C] image with static C in (1, 3), got shape {image.shape}.")
  return int(image.shape[-1])


def _resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """Bicubic resize of ``[h, w, C]`` to ``[size, size, C]``, clipped to [0, 1].

  Bicubic overshoots near edges, hence the clip (as in SimCLR).
  """
  image = tf.image.resize(image, [size, size], method=tf.image.ResizeMethod.BICUBIC)
  return tf.clip_by_value(image, 0.0, 1.0)


# --------------------------------------------------------------------------- public ops


def to_float_rgb(image: tf.Tensor, *, grayscale_to_rgb: bool = True) -> tf.Tensor:
  """uint8 ``[..., H, W, C]`` (C in 1, 3) -> float32 ``[..., H, W, 3]`` in [0, 1]: an image
  ``[H, W, C]`` or a video source's clip ``[T, H, W, C]``.

  A single channel is repeated to 3 when ``grayscale_to_rgb``, else kept (C = 1).
  Float inputs are taken to be in [0, 1] already and only cast.
  """
  image = tf.convert_to_tensor(image)
  image = tf.image.convert_image_dtype(image, tf.float32)  # uint8: divides by 255
  if not grayscale_to_rgb:
    return image
  channels = image.shape[-1]
  if channels == 3:
    return image
  multiples = [1] * (image.shape.rank - 1) + [3]
  if channels == 1:
    return tf.tile(image, multiples)
  # Channel count only known at run time (e.g. decoded images of mixed kinds).
  image = tf.cond(tf.equal(tf.shape(image)[-1], 1), lambda: tf.tile(image, multiples), lambda: image)
  return tf.ensure_shape(image, [None] * (image.shape.rank - 1) + [3])


def center_resize(image: tf.Tensor, *, image_size: int, crop_fraction: float = 1.0) -> tf.Tensor:
  """Deterministic eval transform: float ``[H, W, C]`` -> float32 ``[S, S, C]`` in [0, 1].

  Non-square inputs are first cropped to their central ``min(H, W)`` square so the
  content is not stretched; the square is then resized (bicubic, as the train views).
  ``crop_fraction`` < 1 keeps only the central square of that share of ``min(H, W)``
  (0.875: the ImageNet evaluation's resize to S / 0.875 and centre crop S, in one resize).
  """
  image = tf.convert_to_tensor(image, tf.float32)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width)
  if crop_fraction < 1.0:
    side = tf.cast(tf.round(tf.cast(side, tf.float32) * crop_fraction), tf.int32)
  top, left = (height - side) // 2, (width - side) // 2
  cropped = tf.slice(image, [top, left, 0], [side, side, -1])
  cropped.set_shape([None, None, image.shape[-1]])  # a -1 slice size loses the static C in graph mode
  return _resize(cropped, image_size)


def sample_crop_box(
  image_shape: tf.Tensor,
  seed: tf.Tensor,
  *,
  area_range: tuple[float, float],
  aspect_range: tuple[float, float],
  min_covered: float = SIMCLR_MIN_COVERED,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Samples the random-resized-crop window of an image (Inception-style).

  Args:
    image_shape: int32 ``[3]``, the image's ``[H, W, C]``.
    seed: int32/int64 ``[2]``.
    area_range: crop area as a fraction of the image's.
    aspect_range: crop width / height.
    min_covered: the least fraction of the image the crop covers (``AugmentConfig.crop_min_covered``):
      SimCLR's 0.1 floors the area at 0.1 whatever ``area_range`` says; 0 leaves ``area_range`` alone.

  Returns:
    ``(begin, size)``: int32 ``[3]`` each, for ``tf.slice`` (``size[2] == -1``, all
    channels). When no window fits in 100 attempts, the whole image.
  """
  whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]], tf.float32)  # [1, 1, 4] box (y0, x0, y1, x1)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
    image_size=image_shape,
    bounding_boxes=whole_image,
    seed=seed,
    min_object_covered=min_covered,  # with the whole image as the object box: a floor on the area
    aspect_ratio_range=aspect_range,
    area_range=area_range,
    max_attempts=100,
    use_image_if_no_bounding_boxes=True,
  )
  return begin, size


def random_resized_crop(
  image: tf.Tensor,
  seed: tf.Tensor,
  *,
  image_size: int,
  area_range: tuple[float, float],
  aspect_range: tuple[float, float],
  min_covered: float = SIMCLR_MIN_COVERED,
) -> tf.Tensor:
  """float ``[H, W, C]`` -> float32 ``[S, S, C]`` in [0, 1]: random crop (``sample_crop_box``), bicubic resize.

  Images smaller than S are simply upsampled.
  """
  image = tf.convert_to_tensor(image, tf.float32)
  begin, size = sample_crop_box(
    tf.shape(image), seed, area_range=area_range, aspect_range=aspect_range, min_covered=min_covered
  )
  cropped = tf.slice(image, begin, size)
  cropped.set_shape([None, None, image.shape[-1]])  # a -1 slice size loses the static C in graph mode
  return _resize(cropped, image_size)


def random_flip(image: tf.Tensor, seed: tf.Tensor, *, prob: float) -> tf.Tensor:
  """Mirrors ``[H, W, C]`` left-right with probability ``prob``."""
  return _random_apply(lambda x: tf.reverse(x, axis=[1]), image, prob=prob, seed=seed)


def crop_flip_uint8(
  image: tf.Tensor,
  seed: tf.Tensor,
  *,
  image_size: int,
  area_range: tuple[float, float],
  aspect_range: tuple[float, float],
  flip_prob: float,
) -> tf.Tensor:
  """The mild host augmentation of tasks that corrupt images in the step (reconstruction,
  rotation, masked modeling): float ``[H, W, C]`` -> a random resized crop and flip, uint8
  ``[S, S, C]`` (a quarter of float32 to copy to the devices)."""
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  image = random_resized_crop(image, crop_seed, image_size=image_size, area_range=area_range, aspect_range=aspect_range)
  image = random_flip(image, flip_seed, prob=flip_prob)
  return tf.image.convert_image_dtype(image, tf.uint8, saturate=True)


def color_jitter(
  image: tf.Tensor, seed: tf.Tensor, *, brightness: float, contrast: float, saturation: float, hue: float
) -> tf.Tensor:
  """SimCLR v2 colour jitter of float ``[H, W, C]`` in [0, 1], ops in a random order.

  Brightness multiplies by a factor uniform in ``[max(0, 1 - b), 1 + b]``; contrast and
  saturation scale by a factor uniform in ``[max(0, 1 - x), 1 + x]``; hue shifts by a
  delta uniform in ``[-h, h]``. Each op is followed by a clip to [0, 1]. A strength of 0
  turns its op into the identity; saturation and hue are skipped for C = 1.

  Returns:
    float32 ``[H, W, C]`` in [0, 1].
  """
  image = tf.convert_to_tensor(image, tf.float32)
  channels = _channels(image)
  order_seed, b_seed, c_seed, s_seed, h_seed = _split(seed, 5)

  def identity(x):
    return x

  def brightness_op(x):
    factor = tf.random.stateless_uniform([], seed=b_seed, minval=max(0.0, 1.0 - brightness), maxval=1.0 + brightness)
    return x * factor

  def contrast_op(x):
    return tf.image.stateless_random_contrast(x, max(0.0, 1.0 - contrast), 1.0 + contrast, seed=c_seed)

  def saturation_op(x):
    return tf.image.stateless_random_saturation(x, max(0.0, 1.0 - saturation), 1.0 + saturation, seed=s_seed)

  def hue_op(x):
    return tf.image.stateless_random_hue(x, min(hue, 0.5), seed=h_seed)

  # Zero-strength ops are the identity (and the TF ops reject empty ranges).
  ops = [
    brightness_op if brightness > 0 else identity,
    contrast_op if contrast > 0 else identity,
    saturation_op if saturation > 0 and channels == 3 else identity,
    hue_op if hue > 0 and channels == 3 else identity,
  ]
  if all(op is identity for op in ops):
    return image
  # A uniformly random permutation of the 4 ops: argsort of i.i.d. uniforms.
  order = tf.argsort(tf.random.stateless_uniform([4], seed=order_seed))
  for position in range(4):
    # Default arguments bind this iteration's op and image (late-binding closures would not).
    branches = [lambda op=op, x=image: tf.clip_by_value(op(x), 0.0, 1.0) for op in ops]
    image = tf.switch_case(order[position], branches)
  return tf.ensure_shape(image, [None, None, channels])


def to_grayscale(image: tf.Tensor) -> tf.Tensor:
  """float ``[H, W, C]`` -> luma repeated to ``[H, W, C]`` (no-op for C = 1)."""
  image = tf.convert_to_tensor(image, tf.float32)
  if _channels(image) == 1:
    return image
  return tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])


def gaussian_blur(image: tf.Tensor, *, sigma: tf.Tensor, kernel_size: int) -> tf.Tensor:
  """Separable Gaussian blur of float ``[H, W, C]`` with an odd ``kernel_size``.

  Borders are mirror-padded ('SYMMETRIC') so edges do not darken as with zero padding.
  """
  image = tf.convert_to_tensor(image, tf.float32)
  channels = _channels(image)
  radius = kernel_size // 2
  x = tf.range(-radius, radius + 1, dtype=tf.float32)
  kernel = tf.exp(-tf.square(x) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
  kernel = kernel / tf.reduce_sum(kernel)  # [k]
  kernel = tf.tile(kernel[:, None, None], [1, 1, channels])  # [k, 1, C]
  kernel_h = kernel[:, :, :, None]  # [k, 1, C, 1]: along rows
  kernel_w = tf.transpose(kernel, [1, 0, 2])[:, :, :, None]  # [1, k, C, 1]: along columns
  padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
  blurred = tf.nn.depthwise_conv2d(padded, kernel_h, strides=[1, 1, 1, 1], padding="VALID")
  blurred = tf.nn.depthwise_conv2d(blurred, kernel_w, strides=[1, 1, 1, 1], padding="VALID")
  return blurred[0]


def random_blur(
  image: tf.Tensor, seed: tf.Tensor, *, prob: float, sigma_range: tuple[float, float], kernel_size: int
) -> tf.Tensor:
  """Gaussian blur with probability ``prob``, sigma uniform in ``sigma_range``."""
  apply_seed, sigma_seed = _split(seed, 2)

  def blur(x):
    sigma = tf.random.stateless_uniform([], seed=sigma_seed, minval=sigma_range[0], maxval=sigma_range[1])
    return gaussian_blur(x, sigma=sigma, kernel_size=kernel_size)

  return _random_apply(blur, image, prob=prob, seed=apply_seed)


def solarize(image: tf.Tensor, *, threshold: float = 0.5) -> tf.Tensor:
  """float ``[H, W, C]`` in [0, 1] -> the same with every value ``x >= threshold`` replaced by ``1 - x``.

  BYOL's ``tf.where(x < 0.5, x, 1 - x)``; torchvision's ``RandomSolarize(threshold=128)``
  on uint8 images.
  """
  image = tf.convert_to_tensor(image, tf.float32)
  return tf.where(image >= threshold, 1.0 - image, image)


def random_solarize(image: tf.Tensor, seed: tf.Tensor, *, prob: float) -> tf.Tensor:
  """``solarize`` with probability ``prob``."""
  return _random_apply(solarize, image, prob=prob, seed=seed)


def simclr_view(image: tf.Tensor, seed: tf.Tensor, *, config: AugmentConfig) -> tf.Tensor:
  """One SimCLR view: float32 ``[H, W, C]`` in [0, 1], int32/int64 ``[2]`` seed -> float32 ``[S, S, C]`` in [0, 1].

  C must be static (1 or 3). The same ``(image, seed, config)`` always gives the same view.
  """
  image = tf.convert_to_tensor(image, tf.float32)
  channels = _channels(image)
  seed = tf.convert_to_tensor(seed)
  crop_seed, flip_seed, jitter_seed, gray_seed, blur_seed = _split(seed, 5)
  jitter_apply_seed, jitter_ops_seed = _split(jitter_seed, 2)
  # Folded in rather than a sixth split: the five split seeds, and so the views of every
  # config without solarize, stay what they were before solarize existed.
  solarize_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 5)

  image = random_resized_crop(
    image,
    crop_seed,
    image_size=config.image_size,
    area_range=config.crop_area,
    aspect_range=config.crop_aspect,
    min_covered=config.crop_min_covered,
  )
  image = random_flip(image, flip_seed, prob=config.flip_prob)
  s = config.jitter_strength

  def jitter(x):
    return color_jitter(x, jitter_ops_seed, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s)

  image = _random_apply(jitter, image, prob=config.jitter_prob if s > 0 else 0.0, seed=jitter_apply_seed)
  image = _random_apply(to_grayscale, image, prob=config.grayscale_prob, seed=gray_seed)
  image = random_blur(
    image, blur_seed, prob=config.blur_prob, sigma_range=config.blur_sigma, kernel_size=config.blur_kernel_size
  )
  image = random_solarize(image, solarize_seed, prob=config.solarize_prob)
  return tf.ensure_shape(image, [config.image_size, config.image_size, channels])


def views(image: tf.Tensor, seed: tf.Tensor, *, configs: Sequence[AugmentConfig]) -> tuple[tf.Tensor, ...]:
  """Independent views of one image, view ``i`` by ``configs[i]`` (seeds split from ``seed``).

  Args:
    image: float32 ``[H, W, C]`` in [0, 1].
    seed: int32/int64 ``[2]``.
    configs: one augmentation per view (each view may have its own, e.g. BYOL's asymmetric
      blur and solarize, or its own size).

  Returns:
    ``len(configs)`` float32 views ``[S_i, S_i, C]`` in [0, 1]; view ``i`` is
    ``simclr_view(image, stateless_split(seed, len(configs))[i], configs[i])``.
  """
  seeds = _split(tf.convert_to_tensor(seed), len(configs))
  return tuple(simclr_view(image, s, config=c) for s, c in zip(seeds, configs))


def two_views(image: tf.Tensor, seed: tf.Tensor, *, config: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
  """Two independent SimCLR views of one image (seeds split from ``seed``): ``views`` with ``config`` twice.

  Args:
    image: float32 ``[H, W, C]`` in [0, 1].
    seed: int32/int64 ``[2]``.
    config: the augmentation.

  Returns:
    Two float32 ``[S, S, C]`` views in [0, 1].
  """
  return views(image, seed, configs=(config, config))


__all__ = [
  "SIMCLR_MIN_COVERED",
  "AugmentConfig",
  "center_resize",
  "color_jitter",
  "crop_flip_uint8",
  "gaussian_blur",
  "random_blur",
  "random_flip",
  "random_resized_crop",
  "random_solarize",
  "sample_crop_box",
  "simclr_view",
  "solarize",
  "to_float_rgb",
  "to_grayscale",
  "two_views",
  "views",
]
