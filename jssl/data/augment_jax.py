"""SimCLR view augmentation in pure JAX, to run on the accelerator inside the train step.

The same augmentation as the tf.data one in ``jssl.data.augment`` (same
``AugmentConfig``, same order: random resized crop -> horizontal flip -> colour
jitter in a random order -> grayscale -> Gaussian blur -> solarize), written so that
it jits, vmaps over a batch and has static shapes whatever the random crop:

* every random decision has its own independent draw, and a view is a pure
  function of ``(image, key)``. The draws are not TF's (other generators): the
  *distributions* are the same, and the deterministic ops agree with TF's to float
  rounding (tests/test_augment_device.py checks both). A view draws all its numbers
  in one ``jax.random.uniform`` call and gives each decision fixed slots of it (see
  ``_VIEW_DRAWS``) rather than a key split off per decision: each ``jax.random``
  call site is a threefry costing ~0.5 s of CPU compile time, and fixed slots still
  keep a decision's draw the same whatever else the config switches off, as the
  split seeds of ``augment`` do. The public per-step functions take a key.
* random branches are ``jnp.where`` on draws (both sides computed), which is what
  ``vmap`` makes of a ``lax.cond`` anyway;
* the crop is a dynamic box, so crop + bicubic resize is two matmuls with
  ``[S, H]`` and ``[S, W]`` interpolation matrices built from the box (MXU-friendly,
  no gathers), with TF's bicubic weights (Keys a = -0.5, its 1024-entry table).

``batch_views`` is the entry point for the train step: uint8 ``[B, H, W, C]`` images
and one key in, one float32 ``[B, S_i, S_i, C]`` batch per view out (two views of one
config, or one view per config of a sequence: per-view settings such as BYOL's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jssl.data.augment import SIMCLR_MIN_COVERED, AugmentConfig
from jssl.errors import ConfigError

# tf.image.stateless_sample_distorted_bounding_box as augment.sample_crop_box calls it.
_MAX_ATTEMPTS = 100
# Uniforms each step reads; a view draws them all at once and splits them in this order:
# crop (aspect, height, top, left per attempt), 3 coins (flip, jitter, grayscale),
# jitter (4 for the order, then brightness, contrast, saturation, hue), blur (coin, sigma),
# then, only when solarize may or may not happen, its coin: one slot past the others, so
# configs without it draw what they always drew, and (JAX's threefry being partitionable,
# the default since 0.5, where a value depends on its index only) turning it on changes no
# other decision.
_CROP_DRAWS = 4 * _MAX_ATTEMPTS
_JITTER_DRAWS = 8
_BLUR_DRAWS = 2
_VIEW_DRAWS = _CROP_DRAWS + 3 + _JITTER_DRAWS + _BLUR_DRAWS
# The probabilities a group of views may hold per view (traced) while sharing one trace.
_PROB_FIELDS = ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob")
# tf.image.rgb_to_grayscale's luma weights.
_LUMA = (0.2989, 0.5870, 0.1140)
_HIGHEST = jax.lax.Precision.HIGHEST  # f32 matmuls stay f32 on TPU/GPU (default may be bf16/TF32)


# --------------------------------------------------------------------------- helpers


def _as_float(image: jax.Array) -> jax.Array:
  """uint8 -> float32 in [0, 1] (times 1/255, as tf.image.convert_image_dtype); floats cast."""
  image = jnp.asarray(image)
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) * np.float32(1.0 / 255.0)
  return image.astype(jnp.float32)


def _channels(image: jax.Array) -> int:
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ConfigError(f"expected an [H, W, C] image with C in (1, 3), got shape {image.shape}.")
  return image.shape[-1]


def _decided(prob: float | jax.Array) -> bool:
  """Whether ``prob`` is a Python number 0 or 1, so no coin is needed."""
  return not isinstance(prob, jax.Array) and (prob <= 0.0 or prob >= 1.0)


def _random_apply(
  fn: Callable[[jax.Array], jax.Array], image: jax.Array, *, prob: float | jax.Array, coin: jax.Array
) -> jax.Array:
  """``fn(image)`` when the uniform ``coin`` < ``prob``, else ``image``; a Python 0 or 1 is decided in
  Python (no cost). ``prob`` may be traced (per-view probabilities of views sharing a trace);
  a coin in [0, 1) is never < 0 and always < 1, so a traced 0 or 1 decides the same way.

  Both sides are computed and one selected: what vmap makes of a ``lax.cond`` anyway.
  """
  if not isinstance(prob, jax.Array):
    if prob <= 0.0:
      return image
    if prob >= 1.0:
      return fn(image)
  return jnp.where(coin < prob, fn(image), image)


def _uniform_int(u: jax.Array, n: jax.Array) -> jax.Array:
  """An integer uniform in ``[0, n)`` (0 when ``n <= 1``) from a uniform ``u`` in [0, 1).

  The float rounding bias is below 2^-24 * n; the clip keeps ``u * n`` rounding up to n out.
  """
  return jnp.clip(jnp.floor(u * n).astype(jnp.int32), 0, jnp.maximum(n - 1, 0))


def _lrint(x: jax.Array) -> jax.Array:
  """C's lrintf: round half to even, to int32."""
  return jnp.round(x).astype(jnp.int32)


# --------------------------------------------------------------------------- crop


def sample_crop_box(
  key: jax.Array,
  height: int,
  width: int,
  *,
  area_range: tuple[float, float],
  aspect_range: tuple[float, float],
  min_covered: float = SIMCLR_MIN_COVERED,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """The random-resized-crop window, distributed as ``augment.sample_crop_box``'s.

  A vectorised port of TF's ``sample_distorted_bounding_box`` (``min_object_covered =
  min_covered``, the whole image as the object, 100 attempts): each attempt draws an aspect
  ratio uniformly, then the crop *height* uniformly among the integers whose area
  fits ``area_range``, width = round(height * aspect); the first attempt that fits
  wins, and when none does the window is the whole image. All attempts are drawn at
  once (fixed shapes) and the first valid one picked. As in TF, the offset is drawn
  from ``[0, H - h)``, so a crop shorter than the image never touches its last row
  (nor a narrower one its last column).

  Args:
    key: PRNG key.
    height, width: the image's static size.
    area_range: crop area as a fraction of the image's.
    aspect_range: crop width / height.
    min_covered: the least fraction of the image the crop covers (``AugmentConfig.crop_min_covered``):
      SimCLR's 0.1 floors the area at 0.1 whatever ``area_range`` says; 0 leaves ``area_range`` alone.

  Returns:
    ``(top, left, crop_height, crop_width)``, int32 scalars.
  """
  draws = jax.random.uniform(key, (_CROP_DRAWS,))
  return _crop_box(draws, height, width, area_range=area_range, aspect_range=aspect_range, min_covered=min_covered)


def _crop_box(draws, height, width, *, area_range, aspect_range, min_covered):
  """``sample_crop_box`` from ``_CROP_DRAWS`` uniforms."""
  f32 = np.float32
  # One uniform per attempt for each of: aspect, height, top, left.
  u_aspect, u_height, u_top, u_left = draws.reshape(4, _MAX_ATTEMPTS)
  lo, hi = f32(aspect_range[0]), f32(aspect_range[1])
  aspect = u_aspect * (hi - lo) + lo  # [n]
  # TF's float32 arithmetic: fraction * W * H.
  min_area = f32(area_range[0]) * f32(width) * f32(height)
  max_area = f32(area_range[1]) * f32(width) * f32(height)

  min_h = _lrint(jnp.sqrt(min_area / aspect))
  max_h = _lrint(jnp.sqrt(max_area / aspect))
  # The tallest crop whose rounded width still fits the image.
  fit = (f32(width + 0.5 - 1e-7) / aspect).astype(jnp.int32)
  fit = jnp.where(_lrint(fit * aspect) > width, fit - 1, fit)
  max_h = jnp.where(_lrint(max_h * aspect) > width, fit, max_h)
  max_h = jnp.minimum(max_h, height)
  min_h = jnp.minimum(min_h, max_h)
  # Uniform over the closed range [min_h, max_h].
  crop_h = min_h + _uniform_int(u_height, max_h - min_h + 1)
  crop_w = _lrint(crop_h * aspect)
  # TF nudges the height by one when rounding left the area just outside the range.
  area = (crop_w * crop_h).astype(jnp.float32)
  crop_h = jnp.where(area < min_area, crop_h + 1, crop_h)
  crop_w = _lrint(crop_h * aspect)
  area = (crop_w * crop_h).astype(jnp.float32)
  crop_h = jnp.where(area > max_area, crop_h - 1, crop_h)
  crop_w = _lrint(crop_h * aspect)
  area = (crop_w * crop_h).astype(jnp.float32)

  valid = (area >= min_area) & (area <= max_area) & (crop_w <= width) & (crop_h <= height) & (crop_w > 0) & (crop_h > 0)
  # The overlap constraint with the whole image as the object: at least one pixel and
  # min_covered of the image's area (always true for 0: torchvision's rule).
  valid &= (area >= 1.0) & (area / f32(width * height) >= f32(min_covered))

  top = _uniform_int(u_top, height - crop_h)
  left = _uniform_int(u_left, width - crop_w)
  first = jnp.argmax(valid)  # index of the first True (0 when none)
  found = valid[first]
  return (
    jnp.where(found, top[first], 0),
    jnp.where(found, left[first], 0),
    jnp.where(found, crop_h[first], height),
    jnp.where(found, crop_w[first], width),
  )


def _keys_cubic_table() -> np.ndarray:
  """TF's bicubic coefficient table (resize_bicubic_op.cc, Keys a = -0.5): float32 ``[1025, 2]``.

  Row i holds the weights at distance ``x = i / 1024`` (near tap) and ``1 + x`` (far tap).
  TF looks weights up at the rounded fraction rather than evaluating the cubic, so we
  do the same to agree to float rounding.
  """
  a = -0.5
  x = (np.arange(1025) / 1024.0).astype(np.float32).astype(np.float64)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far_x = x + 1.0
  far = ((a * far_x - 5 * a) * far_x + 8 * a) * far_x - 4 * a
  return np.stack([near, far], axis=1).astype(np.float32)


_CUBIC_TABLE = _keys_cubic_table()


def _cubic_matrix(start: jax.Array, length: jax.Array, in_size: int, out_size: int) -> jax.Array:
  """float32 ``[out_size, in_size]``: bicubic resampling of ``[start, start + length)`` to ``out_size``.

  TF's half-pixel-centre bicubic (``tf.image.resize``, antialias off): output ``i``
  samples the crop at ``(i + 0.5) * length / out_size - 0.5`` with four taps; taps
  outside the crop get weight 0 and the rest are renormalised to sum to 1.
  """
  table = jnp.asarray(_CUBIC_TABLE)
  scale = length.astype(jnp.float32) / np.float32(out_size)
  pos = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * scale - 0.5
  base = jnp.floor(pos)
  offset = _lrint((pos - base) * 1024.0)  # [out], TF's table index
  weights = jnp.stack(
    [table[offset, 1], table[offset, 0], table[1024 - offset, 0], table[1024 - offset, 1]], axis=-1
  )  # [out, 4] for taps base-1 .. base+2
  taps = base.astype(jnp.int32)[:, None] + jnp.arange(-1, 3)  # [out, 4], crop coordinates
  weights = jnp.where((taps >= 0) & (taps < length), weights, 0.0)
  total = jnp.sum(weights, axis=-1, keepdims=True)
  weights = jnp.where(jnp.abs(total) >= 1000 * np.finfo(np.float32).tiny, weights * (1.0 / total), weights)
  one_hot = (start + taps)[..., None] == jnp.arange(in_size)  # [out, 4, in]
  return jnp.einsum("ot,oti->oi", weights, one_hot.astype(jnp.float32), precision=_HIGHEST)


def resized_crop(image: jax.Array, box: tuple[jax.Array, jax.Array, jax.Array, jax.Array], size: int) -> jax.Array:
  """float ``[H, W, C]`` -> float32 ``[size, size, C]`` in [0, 1]: crop to ``box``, bicubic resize, clip.

  ``box = (top, left, height, width)`` may be traced. Equals ``augment``'s
  ``tf.slice`` + ``tf.image.resize(BICUBIC)`` + clip (the clip because bicubic
  overshoots near edges).
  """
  image = _as_float(image)
  height, width, _ = image.shape
  top, left, crop_h, crop_w = (jnp.asarray(v, jnp.int32) for v in box)
  rows = _cubic_matrix(top, crop_h, height, size)  # [S, H]
  cols = _cubic_matrix(left, crop_w, width, size)  # [S, W]
  # Along rows first, then columns, as TF's kernel.
  out = jnp.einsum("sh,hwc->swc", rows, image, precision=_HIGHEST)
  out = jnp.einsum("tw,swc->stc", cols, out, precision=_HIGHEST)
  return jnp.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- colour


def adjust_brightness(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Multiplies by ``factor`` (augment's brightness is a scaling, not tf.image's additive delta)."""
  return image * factor


def adjust_contrast(image: jax.Array, factor: jax.Array) -> jax.Array:
  """``tf.image.adjust_contrast``: ``(x - mean) * factor + mean``, mean per channel over H, W."""
  mean = jnp.mean(image, axis=(0, 1), keepdims=True)
  return (image - mean) * factor + mean


def _rgb_to_hsv(r, g, b):
  """TF adjust_saturation's kernel conversion; hue in [0, 1)."""
  v = jnp.maximum(r, jnp.maximum(g, b))
  spread = v - jnp.minimum(r, jnp.minimum(g, b))
  s = jnp.where(v > 0, spread / jnp.where(v > 0, v, 1.0), 0.0)
  norm = 1.0 / (6.0 * jnp.where(spread > 0, spread, 1.0))
  h = jnp.where(r == v, norm * (g - b), jnp.where(g == v, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0))
  h = jnp.where(spread > 0, h, 0.0)
  h = jnp.where(h < 0, h + 1.0, h)
  return h, s, v


def _hsv_to_rgb(h, s, v):
  """TF adjust_saturation's kernel conversion back (sextant table; sextant 6 is black + m)."""
  c = s * v
  m = v - c
  dh = h * 6.0
  sextant = dh.astype(jnp.int32)
  x = c * (1.0 - jnp.abs(jnp.mod(dh, 2.0) - 1.0))
  zero = jnp.zeros_like(c)
  cases = [sextant == i for i in range(6)]
  r = jnp.select(cases, [c, x, zero, zero, x, c], zero)
  g = jnp.select(cases, [x, c, c, x, zero, zero], zero)
  b = jnp.select(cases, [zero, zero, x, c, c, x], zero)
  return r + m, g + m, b + m


def adjust_saturation(image: jax.Array, factor: jax.Array) -> jax.Array:
  """``tf.image.adjust_saturation`` of float ``[H, W, 3]``: HSV saturation times ``factor``, clipped to [0, 1]."""
  h, s, v = _rgb_to_hsv(image[..., 0], image[..., 1], image[..., 2])
  return jnp.stack(_hsv_to_rgb(h, jnp.clip(s * factor, 0.0, 1.0), v), axis=-1)


def adjust_hue(image: jax.Array, delta: jax.Array) -> jax.Array:
  """``tf.image.adjust_hue`` of float ``[H, W, 3]``: hue (in turns) shifted by ``delta``, |delta| <= 0.5.

  TF's kernel: hue in [0, 6) from the ordering of r, g, b, rotated; min and max channel kept.
  """
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  # (max, mid, min, sextant) by the ordering of the channels, ties as in TF.
  r_lt_g = r < g
  vmax = jnp.where(r_lt_g, jnp.where(b < r, g, jnp.where(b > g, b, g)), jnp.where(b < g, r, jnp.where(b > r, b, r)))
  vmid = jnp.where(r_lt_g, jnp.where(b < r, r, jnp.where(b > g, g, b)), jnp.where(b < g, g, jnp.where(b > r, r, b)))
  vmin = jnp.where(r_lt_g, jnp.where(b < r, b, r), jnp.where(b < g, b, g))
  sextant = jnp.where(r_lt_g, jnp.where(b < r, 1, jnp.where(b > g, 3, 2)), jnp.where(b < g, 0, jnp.where(b > r, 4, 5)))
  spread = vmax - vmin
  ratio = (vmid - vmin) / jnp.where(spread > 0, spread, 1.0)
  h = sextant.astype(jnp.float32) + jnp.where(sextant % 2 == 0, ratio, 1.0 - ratio)
  h = jnp.where(vmax == vmin, 0.0, h)
  h = h + delta * 6.0
  h = jnp.where(h < 0, h + 6.0, h)  # |delta| <= 0.5: one wrap each way is enough
  h = jnp.where(h >= 6.0, h - 6.0, h)
  sextant = h.astype(jnp.int32)
  ratio = h - sextant.astype(jnp.float32)
  ratio = jnp.where(sextant % 2 == 0, ratio, 1.0 - ratio)
  vmid = vmin + ratio * (vmax - vmin)
  cases = [sextant == i for i in range(5)]  # 5 and beyond: the default branch
  r = jnp.select(cases, [vmax, vmid, vmin, vmin, vmid], vmax)
  g = jnp.select(cases, [vmid, vmax, vmax, vmid, vmin], vmin)
  b = jnp.select(cases, [vmin, vmin, vmid, vmax, vmax], vmid)
  return jnp.stack([r, g, b], axis=-1)


def jitter_in_order(
  image: jax.Array,
  order: jax.Array,
  *,
  brightness_factor: jax.Array | None,
  contrast_factor: jax.Array | None,
  saturation_factor: jax.Array | None,
  hue_delta: jax.Array | None,
) -> jax.Array:
  """The jitter ops with given parameters, op ``order[k]`` at position ``k``, each followed by a clip.

  Ops are numbered 0 brightness, 1 contrast, 2 saturation, 3 hue; ``None`` (or any
  parameter on a 1-channel image for saturation and hue) makes that op the identity.
  ``order`` is an int ``[4]`` permutation, possibly traced.
  """
  channels = _channels(image)

  def maybe(op, param):
    if param is None or (op in (adjust_saturation, adjust_hue) and channels == 1):
      return lambda x: x
    return lambda x: op(x, param)

  ops = [
    maybe(adjust_brightness, brightness_factor),
    maybe(adjust_contrast, contrast_factor),
    maybe(adjust_saturation, saturation_factor),
    maybe(adjust_hue, hue_delta),
  ]
  branches = [lambda x, op=op: jnp.clip(op(x), 0.0, 1.0) for op in ops]
  # A loop rather than 4 unrolled switches: the ops are traced and compiled once.
  # Under vmap a switch computes all four ops and selects; unbatched it runs one.
  return jax.lax.fori_loop(0, 4, lambda position, x: jax.lax.switch(order[position], branches, x), image)


def color_jitter(
  image: jax.Array, key: jax.Array, *, brightness: float, contrast: float, saturation: float, hue: float
) -> jax.Array:
  """SimCLR v2 colour jitter of float ``[H, W, C]`` in [0, 1], ops in a random order (as ``augment``).

  Brightness multiplies by a factor uniform in ``[max(0, 1 - b), 1 + b]``; contrast and
  saturation scale by a factor uniform in ``[max(0, 1 - x), 1 + x]``; hue shifts by a
  delta uniform in ``[-h, h]`` (h clamped to 0.5). Each op is followed by a clip to
  [0, 1]. A strength of 0 turns its op into the identity; saturation and hue are
  skipped for C = 1.

  Returns:
    float32 ``[H, W, C]`` in [0, 1].
  """
  return _color_jitter(
    _as_float(image),
    jax.random.uniform(key, (_JITTER_DRAWS,)),
    brightness=brightness,
    contrast=contrast,
    saturation=saturation,
    hue=hue,
  )


def _color_jitter(image, u, *, brightness, contrast, saturation, hue):
  """``color_jitter`` from ``_JITTER_DRAWS`` uniforms: 4 for the order, then b, c, s, h."""
  hue = min(hue, 0.5)
  if all(s <= 0 for s in (brightness, contrast, saturation, hue)):
    return image

  def between(value, low, high):
    return low + value * (high - low)

  def factor(value, strength):
    return between(value, max(0.0, 1.0 - strength), 1.0 + strength) if strength > 0 else None

  # A uniformly random permutation of the 4 ops: argsort of i.i.d. uniforms, as augment.
  order = jnp.argsort(u[:4])
  return jitter_in_order(
    image,
    order,
    brightness_factor=factor(u[4], brightness),
    contrast_factor=factor(u[5], contrast),
    saturation_factor=factor(u[6], saturation),
    hue_delta=between(u[7], -hue, hue) if hue > 0 else None,
  )


def to_grayscale(image: jax.Array) -> jax.Array:
  """float ``[H, W, C]`` -> luma repeated to ``[H, W, C]`` (no-op for C = 1); tf.image's weights."""
  if _channels(image) == 1:
    return image
  # Written out rather than a dot so no backend lowers it to reduced precision.
  luma = image[..., 0] * _LUMA[0] + image[..., 1] * _LUMA[1] + image[..., 2] * _LUMA[2]
  return jnp.repeat(luma[..., None], 3, axis=-1)


# --------------------------------------------------------------------------- blur


def gaussian_blur(image: jax.Array, *, sigma: jax.Array, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur of float ``[H, W, C]`` with an odd ``kernel_size`` (``sigma`` may be traced).

  Mirror-padded ('symmetric', as augment's tf.pad SYMMETRIC) so edges do not darken;
  rows first, then columns, as augment.
  """
  radius = kernel_size // 2
  x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  kernel = jnp.exp(-jnp.square(x) / (2.0 * jnp.square(jnp.asarray(sigma, jnp.float32))))
  kernel = kernel / jnp.sum(kernel)  # [k]
  height, width, _ = image.shape
  padded = jnp.pad(image, [(radius, radius), (radius, radius), (0, 0)], mode="symmetric")
  # A weighted sum of k shifted windows: static slices, no convolution with a traced kernel.
  rows = sum(kernel[i] * padded[i : i + height] for i in range(kernel_size))
  return sum(kernel[i] * rows[:, i : i + width] for i in range(kernel_size))


def random_blur(
  image: jax.Array, key: jax.Array, *, prob: float, sigma_range: tuple[float, float], kernel_size: int
) -> jax.Array:
  """Gaussian blur with probability ``prob``, sigma uniform in ``sigma_range``."""
  return _random_blur(
    image, jax.random.uniform(key, (_BLUR_DRAWS,)), prob=prob, sigma_range=sigma_range, kernel_size=kernel_size
  )


def _random_blur(image, u, *, prob, sigma_range, kernel_size):
  """``random_blur`` from 2 uniforms: the coin, then sigma."""
  coin, u_sigma = u[0], u[1]

  def blur(x):
    sigma = sigma_range[0] + u_sigma * (sigma_range[1] - sigma_range[0])
    return gaussian_blur(x, sigma=sigma, kernel_size=kernel_size)

  return _random_apply(blur, image, prob=prob, coin=coin)


def solarize(image: jax.Array, *, threshold: float = 0.5) -> jax.Array:
  """float ``[H, W, C]`` in [0, 1] -> the same with every ``x >= threshold`` replaced by ``1 - x`` (as augment's)."""
  return jnp.where(image >= threshold, 1.0 - image, image)


# --------------------------------------------------------------------------- views


def simclr_view(image: jax.Array, key: jax.Array, *, config: AugmentConfig) -> jax.Array:
  """One SimCLR view: ``[H, W, C]`` (float in [0, 1] or uint8; C in 1, 3) -> float32 ``[S, S, C]`` in [0, 1].

  The same ``(image, key, config)`` always gives the same view.
  """
  return _view(image, key, config=config, probs={})


def _view(image, key, *, config, probs):
  """``simclr_view`` with the probabilities in ``probs`` (name -> float or traced scalar) in place of ``config``'s."""
  image = _as_float(image)
  height, width, _ = image.shape
  _channels(image)
  probs = {name: probs.get(name, getattr(config, name)) for name in _PROB_FIELDS}
  solarize_drawn = not _decided(probs["solarize_prob"])
  draws = jax.random.uniform(key, (_VIEW_DRAWS + 1 if solarize_drawn else _VIEW_DRAWS,))
  crop_u, coins, jitter_u, blur_u = jnp.split(draws[:_VIEW_DRAWS], np.cumsum([_CROP_DRAWS, 3, _JITTER_DRAWS]))
  flip_coin, jitter_coin, gray_coin = coins

  box = _crop_box(
    crop_u,
    height,
    width,
    area_range=config.crop_area,
    aspect_range=config.crop_aspect,
    min_covered=config.crop_min_covered,
  )
  view = resized_crop(image, box, config.image_size)
  view = _random_apply(lambda x: x[:, ::-1], view, prob=probs["flip_prob"], coin=flip_coin)
  s = config.jitter_strength

  def jitter(x):
    return _color_jitter(x, jitter_u, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s)

  view = _random_apply(jitter, view, prob=probs["jitter_prob"] if s > 0 else 0.0, coin=jitter_coin)
  view = _random_apply(to_grayscale, view, prob=probs["grayscale_prob"], coin=gray_coin)
  view = _random_blur(
    view, blur_u, prob=probs["blur_prob"], sigma_range=config.blur_sigma, kernel_size=config.blur_kernel_size
  )
  return _random_apply(solarize, view, prob=probs["solarize_prob"], coin=draws[_VIEW_DRAWS] if solarize_drawn else None)


def views(image: jax.Array, key: jax.Array, *, configs: Sequence[AugmentConfig]) -> tuple[jax.Array, ...]:
  """Independent views of one ``[H, W, C]`` image, view ``i`` by ``configs[i]`` from ``split(key, len(configs))[i]``.

  Views whose configs differ at most in their probabilities (BYOL's two views: blur 1.0 /
  0.1, solarize 0 / 0.2) are made by one vmap over their keys and probabilities, so the
  view is traced and compiled once per group, not once per view; a probability that
  differs within a group is then a traced value (its step always computed, then selected).

  Returns:
    ``len(configs)`` float32 views ``[S_i, S_i, C]`` in [0, 1].
  """
  configs = tuple(configs)
  keys = jax.random.split(key, len(configs))
  groups: dict[AugmentConfig, list[int]] = {}
  for i, config in enumerate(configs):
    groups.setdefault(dataclasses.replace(config, **dict.fromkeys(_PROB_FIELDS, 0.0)), []).append(i)
  out = [None] * len(configs)
  for members in groups.values():
    fixed, varying = {}, {}
    for name in _PROB_FIELDS:
      values = [getattr(configs[i], name) for i in members]
      if len(set(values)) == 1:
        fixed[name] = values[0]
      else:
        varying[name] = jnp.asarray(values, jnp.float32)
    config = configs[members[0]]
    group_keys = keys if len(members) == len(configs) else keys[np.asarray(members)]
    made = jax.vmap(lambda k, p, config=config, fixed=fixed: _view(image, k, config=config, probs={**fixed, **p}))(
      group_keys, varying
    )
    for j, i in enumerate(members):
      out[i] = made[j]
  return tuple(out)


def two_views(image: jax.Array, key: jax.Array, *, config: AugmentConfig) -> tuple[jax.Array, jax.Array]:
  """Two independent SimCLR views of one ``[H, W, C]`` image (keys split from ``key``): float32 ``[S, S, C]`` each."""
  # One vmap over the two keys: the view is traced and compiled once, not twice.
  return views(image, key, configs=(config, config))


def batch_views(
  images: jax.Array,
  key: jax.Array,
  *,
  config: AugmentConfig | Sequence[AugmentConfig],
  indices: jax.Array | None = None,
) -> tuple[jax.Array, ...]:
  """Views of every image of a batch: ``[B, H, W, C]`` (uint8 or float in [0, 1]) -> float32 ``[B, S_i, S_i, C]`` each.

  ``config``: one ``AugmentConfig`` for two views alike (SimCLR), or one per view.
  Example ``b`` draws from ``fold_in(key, indices[b])`` (``indices`` defaults to
  ``arange(B)``), so its views depend only on its image, ``key`` and its index, not
  on the rest of the batch or on how the batch is split over devices or
  micro-batches: pass the global indices of a slice to get the same views as the
  whole batch would.
  """
  configs = (config, config) if isinstance(config, AugmentConfig) else tuple(config)
  images = jnp.asarray(images)
  if indices is None:
    indices = jnp.arange(images.shape[0])
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
  return jax.vmap(lambda image, k: views(image, k, configs=configs))(images, keys)


__all__ = [
  "AugmentConfig",
  "adjust_brightness",
  "adjust_contrast",
  "adjust_hue",
  "adjust_saturation",
  "batch_views",
  "color_jitter",
  "gaussian_blur",
  "jitter_in_order",
  "random_blur",
  "resized_crop",
  "sample_crop_box",
  "simclr_view",
  "solarize",
  "to_grayscale",
  "two_views",
  "views",
]
