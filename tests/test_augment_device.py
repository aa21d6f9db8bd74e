"""Tests of the on-device SimCLR augmentation (jssl.data.augment_jax) against the tf.data one.

Three kinds: the random draws have the distributions of jssl.data.augment's (two-sample
comparisons with stated tolerances); the deterministic ops agree with TF's to float
rounding; and the invariances a train step relies on (shapes, keys, batch layout).
Compiled functions are cached per config, since compiling dominates the run time here.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from jssl.data import augment
from jssl.data import augment_jax as aj
from jssl.data.augment import AugmentConfig

S = 16
# Every random step off and the crop forced to the whole image (as in test_augment.py).
ALL_OFF = dict(
  image_size=S,
  crop_area=(1.0, 1.0),
  crop_aspect=(1.0, 1.0),
  flip_prob=0.0,
  jitter_prob=0.0,
  grayscale_prob=0.0,
  blur_prob=0.0,
)
CROP = dict(area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3))  # AugmentConfig's defaults
# Random crop and flip only: cheap to compile, for tests of plumbing that no step changes.
CROP_FLIP = AugmentConfig(**{**ALL_OFF, "crop_area": (0.08, 1.0), "crop_aspect": (3 / 4, 4 / 3), "flip_prob": 0.5})
ATOL = 1e-5  # float32 ops whose only differences are summation order and rounding


def _float_image(height, width, channels=3, *, seed=0, low=0.0, high=1.0):
  return np.random.RandomState(seed).uniform(low, high, size=(height, width, channels)).astype(np.float32)


def _uint8_images(batch, height, width, channels=3, *, seed=0):
  return np.random.RandomState(seed).randint(0, 256, size=(batch, height, width, channels)).astype(np.uint8)


def _edge_case_image():
  """A 6x8 colour image whose first row holds the HSV edge cases: grey, black, white, ties, pure hues."""
  image = _float_image(6, 8, seed=3)
  image[0] = [
    [0.5, 0.5, 0.5],
    [0.0, 0.0, 0.0],
    [1.0, 1.0, 1.0],
    [0.2, 0.2, 0.7],
    [0.7, 0.7, 0.2],
    [0.7, 0.2, 0.7],
    [1.0, 0.0, 0.0],
    [0.0, 0.3, 1.0],
  ]
  return image


def _keys(num, seed=0):
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), jnp.arange(num))


def _tf_map(fn, num, *, base=12345):
  """Stacks ``fn(seed)`` for seeds ``[base, i]``, i < num, computed in a tf.data map (graph mode)."""
  ds = tf.data.Dataset.range(num).map(
    lambda i: fn(tf.stack([tf.constant(base, tf.int64), i])), num_parallel_calls=tf.data.AUTOTUNE
  )
  return next(iter(ds.batch(num).as_numpy_iterator()))


@functools.cache
def _jit_views(config):
  """jit(vmap over keys) of ``simclr_view`` of one image, compiled once per config (and image shape)."""
  return jax.jit(jax.vmap(lambda image, k: aj.simclr_view(image, k, config=config), in_axes=(None, 0)))


def _views_over_keys(config, image, num, keys=None):
  return np.asarray(_jit_views(config)(image, _keys(num) if keys is None else keys))


# Jitted once here: op-by-op dispatch would compile every primitive on first use, slower.
_jit_resized_crop = jax.jit(aj.resized_crop, static_argnums=2)
_jit_op = {
  name: jax.jit(getattr(aj, name))
  for name in ("adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "to_grayscale")
}
_jit_blur = jax.jit(aj.gaussian_blur, static_argnames="kernel_size")
_jit_solarize = jax.jit(aj.solarize)
_jit_jitter_in_order = jax.jit(aj.jitter_in_order)


@functools.cache
def _jit_batch_views(config):
  return jax.jit(functools.partial(aj.batch_views, config=config))


def _ks_statistic(a, b):
  """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
  grid = np.union1d(a, b)
  cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
  cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
  return np.abs(cdf_a - cdf_b).max()


def _assert_same_mean_and_variance(a, b, what):
  """Mean and variance of two independent samples agree within 4 standard errors.

  The standard error of the difference of means is sqrt(var_a/n + var_b/m); that of the
  log variance ratio is sqrt((k - 1)(1/n + 1/m)), k the pooled kurtosis (exact for large
  samples whatever the distribution). 4 sigma: a false alarm about once in 15,000 runs;
  the seeds are fixed, so a run that passes keeps passing.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  n, m = len(a), len(b)
  se_mean = np.sqrt(a.var() / n + b.var() / m)
  assert abs(a.mean() - b.mean()) < 4 * se_mean, f"{what}: means {a.mean():.5f} vs {b.mean():.5f} (se {se_mean:.5f})"
  pooled = np.concatenate([a - a.mean(), b - b.mean()])
  kurtosis = np.mean(pooled**4) / np.mean(pooled**2) ** 2
  se_log_ratio = np.sqrt((kurtosis - 1) * (1 / n + 1 / m))
  log_ratio = np.log(a.var() / b.var())
  assert abs(log_ratio) < 4 * se_log_ratio, (
    f"{what}: variances {a.var():.6f} vs {b.var():.6f} (log ratio se {se_log_ratio:.4f})"
  )


# --------------------------------------------------------------------------- distributions match the tf.data version


@pytest.mark.parametrize("height, width", [(32, 32), (40, 24)])
def test_crop_box_distribution_matches_tf(height, width):
  """Area fraction, aspect and position of 4000 JAX boxes against 4000 TF boxes.

  KS threshold 0.044 = 1.95 * sqrt(2 / 4000): under equal distributions a larger
  statistic has probability ~0.001 (less for these discrete areas). Sampling the area
  uniformly instead of the height (torchvision's way) moves the mean area from 0.43 to
  0.54 and the KS statistic to ~0.2.
  """
  n = 4000
  top, left, h, w = map(np.asarray, jax.jit(jax.vmap(lambda k: aj.sample_crop_box(k, height, width, **CROP)))(_keys(n)))

  def tf_box(seed):
    begin, size = augment.sample_crop_box(tf.constant([height, width, 3]), seed, **CROP)
    return tf.concat([begin[:2], size[:2]], axis=0)

  tf_top, tf_left, tf_h, tf_w = _tf_map(tf_box, n).T
  for t, lft, hh, ww in [(top, left, h, w), (tf_top, tf_left, tf_h, tf_w)]:
    area = hh * ww / (height * width)
    assert area.min() >= 0.08 and area.max() <= 1.0
    assert (t >= 0).all() and (lft >= 0).all() and (t + hh <= height).all() and (lft + ww <= width).all()
    # TF draws the offset from [0, H - h): a shorter crop never reaches the last row.
    assert ((t + hh < height) | (hh == height)).all() and ((lft + ww < width) | (ww == width)).all()

  area, tf_area = h * w / (height * width), tf_h * tf_w / (height * width)
  assert _ks_statistic(area, tf_area) < 0.044
  assert abs(area.mean() - tf_area.mean()) < 0.015  # se of the difference ~0.0052
  assert _ks_statistic(w / h, tf_w / tf_h) < 0.044
  # Crop centres, as a fraction of the side.
  assert _ks_statistic((top + h / 2) / height, (tf_top + tf_h / 2) / height) < 0.044
  assert _ks_statistic((left + w / 2) / width, (tf_left + tf_w / 2) / width) < 0.044


def test_crop_box_without_floor_matches_tf():
  """``min_covered`` 0 (torchvision's rule, multi-crop's local crops) on a 64x48 image with
  SwAV's local area range (0.05, 0.14): 1000 JAX boxes against 1000 TF boxes.

  Both span the whole range (SimCLR's floor of 0.1 would leave no area below 0.1; 63% of
  these are). KS threshold 0.087 = 1.95 * sqrt(2 / 1000), as above (measured 0.033);
  keeping the floor on the JAX side only moves the statistic to 0.63.
  """
  n, height, width = 1000, 64, 48
  ranges = dict(area_range=(0.05, 0.14), aspect_range=(3 / 4, 4 / 3))

  def boxes(floor):  # [4, n]: top, left, height, width
    sample = jax.vmap(lambda k: jnp.stack(aj.sample_crop_box(k, height, width, **ranges, min_covered=floor)))
    return np.asarray(jax.jit(sample)(_keys(n))).T

  _, _, h, w = boxes(0.0)
  _, _, floored_h, floored_w = boxes(0.1)

  def tf_box(seed):
    _, size = augment.sample_crop_box(tf.constant([height, width, 3]), seed, **ranges, min_covered=0.0)
    return size[:2]

  tf_h, tf_w = _tf_map(tf_box, n).T
  area, tf_area = h * w / (height * width), tf_h * tf_w / (height * width)
  for a in (area, tf_area):
    assert a.min() >= 0.05 and a.max() <= 0.14
    assert a.min() < 0.06 and np.mean(a < 0.1) > 0.3
  assert (floored_h * floored_w / (height * width)).min() >= 0.1
  assert _ks_statistic(area, tf_area) < 0.087
  assert _ks_statistic(w / h, tf_w / tf_h) < 0.087


def test_view_crop_follows_config_crop_min_covered():
  """Device views of a 64 px image whose pixels encode their coordinates, every step but the
  crop off, area range (0.05, 0.14), aspect 1, 200 keys: with ``crop_min_covered`` 0 the
  measured areas reach the range's low end, with SimCLR's default 0.1 none is below 0.1.

  A crop of h rows resized to S spans (h - h / S) / (side - 1) of the encoded range (half-pixel
  centres), so h = spread * (side - 1) * S / (S - 1); good to 0.002 of the area.
  """
  side = 64
  ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  image = np.stack([ys / (side - 1), xs / (side - 1), np.zeros(ys.shape)], axis=-1).astype(np.float32)

  def areas(floor):
    config = AugmentConfig(**{**ALL_OFF, "crop_area": (0.05, 0.14), "crop_min_covered": floor})
    v = _views_over_keys(config, image, 200)
    rows = v[:, -1, :, 0].mean(-1) - v[:, 0, :, 0].mean(-1)
    cols = v[:, :, -1, 1].mean(-1) - v[:, :, 0, 1].mean(-1)
    return (rows * (side - 1) * S / (S - 1)) * (cols * (side - 1) * S / (S - 1)) / side**2

  free, floored = areas(0.0), areas(0.1)
  assert free.min() > 0.05 - 0.005 and free.max() < 0.14 + 0.005
  assert free.min() < 0.08 and np.mean(free < 0.1) > 0.4
  assert floored.min() > 0.1 - 0.005 and floored.max() < 0.14 + 0.005


def test_crop_box_falls_back_to_the_whole_image_like_tf():
  """No box of aspect 3-4 and area >= 0.9 fits a square: both give the whole image."""
  ranges = dict(area_range=(0.9, 1.0), aspect_range=(3.0, 4.0))
  boxes = np.asarray(jax.jit(jax.vmap(lambda k: jnp.stack(aj.sample_crop_box(k, 20, 20, **ranges))))(_keys(8)))
  np.testing.assert_array_equal(boxes, np.tile([0, 0, 20, 20], (8, 1)))
  begin, size = augment.sample_crop_box(tf.constant([20, 20, 3]), tf.constant([1, 2], tf.int64), **ranges)
  assert list(begin.numpy()[:2]) + list(size.numpy()[:2]) == [0, 0, 20, 20]


def _chroma(images):
  """Per-image mean over pixels of max - min over channels (HSV saturation times value)."""
  return (images.max(axis=-1) - images.min(axis=-1)).reshape(len(images), -1).mean(axis=1)


@pytest.mark.parametrize(
  "strengths",
  [
    dict(brightness=0.8, contrast=0.0, saturation=0.0, hue=0.0),
    dict(brightness=0.0, contrast=0.0, saturation=0.8, hue=0.0),
    dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2),
  ],
  ids=["brightness", "saturation", "all-in-random-order"],
)
def test_color_jitter_change_matches_tf(strengths):
  """2000 JAX jitters against 2000 TF ones: mean and variance of per-image changes.

  Measured: the change of the image mean (brightness), of the per-channel std
  (contrast), of the chroma, max - min over channels (saturation), and of the red
  channel's mean (hue). An op that is off leaves its measure unchanged or nearly so in
  both; with all four on, a wrong op or a wrong order shows in at least one.
  """
  image = _float_image(8, 8, seed=1, low=0.1, high=0.7)
  n = 2000
  ours = np.asarray(jax.jit(jax.vmap(lambda k: aj.color_jitter(image, k, **strengths)))(_keys(n)))
  theirs = _tf_map(lambda s: augment.color_jitter(image, s, **strengths), n)
  assert ours.min() >= 0.0 and ours.max() <= 1.0

  def changes(views):
    flat = views.reshape(n, -1, 3)
    return {
      "mean": flat.mean(axis=(1, 2)) - image.mean(),
      "std": flat.std(axis=1).mean(axis=1) - image.std((0, 1)).mean(),
      "chroma": _chroma(views) - _chroma(image[None])[0],
      "red": flat[..., 0].mean(axis=1) - image[..., 0].mean(),
    }

  ours, theirs = changes(ours), changes(theirs)
  assert ours["chroma"].std() > 1e-3  # the ops acted (each of them scales the chroma)
  for measure in ours:
    if ours[measure].std() > 1e-4:  # a measure the ops left alone is compared only by the mean
      _assert_same_mean_and_variance(ours[measure], theirs[measure], measure)
    else:
      assert abs(ours[measure].mean() - theirs[measure].mean()) < 1e-4, measure


def _rates_image():
  """16x16 colour texture with a flat 6x6 patch top-left and three pairs of equal pixels.

  Lets one view tell every step apart (crop off): grayscale makes the channels equal;
  a flip moves the patch to the right; the jitter changes the patch's colour (it maps
  colours pointwise, plus a global mean, so the patch stays flat and equal pixels stay
  equal); the blur (radius 1, sigma >= 0.5) leaves the patch interior flat but makes
  the equal pixels differ, their neighbours being different.
  """
  image = _float_image(S, S, seed=2, low=0.2, high=0.8)
  image[2:8, 1:7] = [0.6, 0.4, 0.3]
  for (y1, x1), (y2, x2) in _EQUAL_PAIRS:
    image[y2, x2] = image[y1, x1]
  return image


_EQUAL_PAIRS = [((10, 3), (13, 11)), ((12, 6), (9, 13)), ((14, 2), (11, 8))]


def test_application_rates_and_independence_match_the_config():
  """Over 4000 views with all four random steps on: each step's rate and each pair's joint rate.

  Tolerance 4 binomial standard deviations (<= 0.032). Joint rates equal to the products
  of the rates check the steps draw independently (a shared coin would make
  flip & blur 0.5, not 0.25).
  """
  rates = {"flip": 0.5, "jitter": 0.8, "grayscale": 0.2, "blur": 0.5}
  config = AugmentConfig(
    **{
      **ALL_OFF,
      "flip_prob": rates["flip"],
      "jitter_prob": rates["jitter"],
      "grayscale_prob": rates["grayscale"],
      "blur_prob": rates["blur"],
      "blur_sigma": (0.5, 2.0),
    }
  )
  assert config.blur_kernel_size == 3
  image = _rates_image()
  n = 4000
  views = _views_over_keys(config, image, n).astype(np.float64)

  def flat(region):
    return region.reshape(n, -1, 3).std(axis=1).max(axis=1) < 1e-5

  gray = (np.abs(views[..., 0] - views[..., 1]).max(axis=(1, 2)) < 1e-6) & (
    np.abs(views[..., 0] - views[..., 2]).max(axis=(1, 2)) < 1e-6
  )
  kept, flipped = flat(views[:, 3:7, 2:6]), flat(views[:, 3:7, S - 6 : S - 2])
  assert (kept ^ flipped).all()  # the patch interior is in exactly one place
  patch = np.where(flipped[:, None], views[:, 4, S - 4], views[:, 4, 3])
  plain = np.array([0.6, 0.4, 0.3])
  plain = np.where(gray[:, None], plain @ np.array([0.2989, 0.5870, 0.1140]), plain)
  jittered = np.abs(patch - plain).max(axis=1) > 1e-4

  def mirror(x):  # column x after the flip, where there was one
    return np.where(flipped, S - 1 - x, x)

  blurred = np.zeros(n, bool)
  for (y1, x1), (y2, x2) in _EQUAL_PAIRS:
    blurred |= np.abs(views[np.arange(n), y1, mirror(x1)] - views[np.arange(n), y2, mirror(x2)]).max(axis=1) > 1e-5

  seen = {"flip": flipped, "jitter": jittered, "grayscale": gray, "blur": blurred}
  names = list(seen)
  for i, a in enumerate(names):
    p = rates[a]
    assert abs(seen[a].mean() - p) < 4 * np.sqrt(p * (1 - p) / n), a
    for b in names[i + 1 :]:
      p = rates[a] * rates[b]
      assert abs((seen[a] & seen[b]).mean() - p) < 4 * np.sqrt(p * (1 - p) / n), (a, b)


def _total_variation(x):
  """Per image of ``[N, H, W, C]``: sum of absolute differences of neighbours."""
  x = np.asarray(x, np.float64)
  return np.abs(np.diff(x, axis=1)).sum(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).sum(axis=(1, 2, 3))


def test_per_view_configs_give_each_view_its_rates_like_tf():
  """BYOL's asymmetric views made in the step (``batch_views`` with one config per view), over
  4000 examples, against the rates test_augment.py checks for the tf.data views: view 1
  blurred always and never solarized; view 2 blurred at 0.1, solarized at 0.2, both at 0.02.

  The image (crop off) has values in [0.55, 0.95]: solarize sends every pixel below 0.5 and
  keeps the total variation, the blur keeps the pixels in range and lowers it. Tolerance 4
  binomial standard deviations.
  """
  base = {**ALL_OFF, "blur_sigma": (0.5, 2.0)}
  configs = (
    AugmentConfig(**{**base, "blur_prob": 1.0}),
    AugmentConfig(**{**base, "blur_prob": 0.1, "solarize_prob": 0.2}),
  )
  image = _float_image(S, S, seed=9, low=0.55, high=0.95)
  n = 4000
  views = _jit_batch_views(configs)(np.broadcast_to(image, (n, S, S, 3)), jax.random.key(5))
  seen = []
  for view in views:
    view = np.asarray(view)
    blurred = _total_variation(view) < _total_variation(image[None])[0] * (1 - 1e-3)
    seen.append((blurred, view.reshape(n, -1).mean(axis=1) < 0.5))
  (blurred1, solarized1), (blurred2, solarized2) = seen
  assert blurred1.all() and not solarized1.any()
  for got, p in [(blurred2, 0.1), (solarized2, 0.2), (blurred2 & solarized2, 0.02)]:
    assert abs(got.mean() - p) < 4 * np.sqrt(p * (1 - p) / n), (got.mean(), p)


def test_views_with_their_own_configs_follow_the_key_contract():
  """``batch_views`` with one config per view: example i's view j is ``simclr_view`` of its
  image at ``split(fold_in(key, i), V)[j]`` with ``configs[j]``. Views 1 and 2 share a trace
  (their configs differ only in a probability): view 2 is view 1's config with solarize at
  p = 0.5, which changes no other draw, so it is view 1's config's view at its own key or the
  solarization of that, both seen. View 3 has a size of its own (a whole-image resize to 7 px,
  flipped at p = 0.5: both seen)."""
  configs = (
    CROP_FLIP,
    dataclasses.replace(CROP_FLIP, solarize_prob=0.5),
    AugmentConfig(**{**ALL_OFF, "image_size": 7, "flip_prob": 0.5}),
  )
  images = _uint8_images(8, 20, 28, seed=2)
  key = jax.random.key(8)
  out = [np.asarray(v) for v in _jit_batch_views(configs)(images, key)]
  assert [v.shape for v in out] == [(8, S, S, 3), (8, S, S, 3), (8, 7, 7, 3)]
  solarized, flipped = [], []
  for i in range(8):
    keys = jax.random.split(jax.random.fold_in(key, i), 3)
    image = images[i].astype(np.float32) / 255.0
    expected = _views_over_keys(CROP_FLIP, image, 2, keys=keys[:2])  # compiled as in the test above
    np.testing.assert_allclose(out[0][i], expected[0], atol=1e-5)
    solarized.append(np.abs(out[1][i] - np.where(expected[1] >= 0.5, 1 - expected[1], expected[1])).max() < 1e-5)
    assert solarized[-1] or np.abs(out[1][i] - expected[1]).max() < 1e-5, i
    resized = np.clip(tf.image.resize(image, [7, 7], method="bicubic").numpy(), 0.0, 1.0)
    flipped.append(np.abs(out[2][i] - resized[:, ::-1]).max() < ATOL)
    assert flipped[-1] or np.abs(out[2][i] - resized).max() < ATOL, i
  assert 0 < sum(solarized) < 8 and 0 < sum(flipped) < 8


# --------------------------------------------------------------------------- deterministic ops equal TF's


@pytest.mark.parametrize("box", [(0, 0, 40, 24), (3, 2, 10, 7), (5, 1, 33, 20), (39, 23, 1, 1), (0, 4, 2, 3)])
@pytest.mark.parametrize("size", [32, 12])
def test_resized_crop_matches_tf(box, size):
  """Crop + bicubic resize + clip, up- and downsampling, against augment's slice + resize."""
  image = _float_image(40, 24, seed=4)
  top, left, h, w = box
  expected = augment._resize(tf.slice(image, [top, left, 0], [h, w, -1]), size).numpy()
  out = _jit_resized_crop(image, tuple(jnp.int32(v) for v in box), size)
  np.testing.assert_allclose(out, expected, atol=ATOL)


def test_random_resized_crop_matches_tf_with_tf_box():
  """TF's whole random crop step equals our resized_crop at TF's box (the glue between the two)."""
  image = _float_image(40, 24, seed=5)
  for i in range(4):
    seed = tf.constant([7, i], tf.int64)
    expected = augment.random_resized_crop(image, seed, image_size=12, **CROP).numpy()
    begin, size = augment.sample_crop_box(tf.constant([40, 24, 3]), seed, **CROP)
    box = tuple(jnp.int32(v) for v in (begin[0], begin[1], size[0], size[1]))
    np.testing.assert_allclose(_jit_resized_crop(image, box, 12), expected, atol=ATOL)


@pytest.mark.parametrize("factor", [0.0, 0.2, 1.0, 1.8])
def test_brightness_contrast_saturation_match_tf(factor):
  image = _edge_case_image()
  factor = np.float32(factor)
  np.testing.assert_allclose(_jit_op["adjust_brightness"](image, factor), image.astype(np.float64) * factor, atol=ATOL)
  np.testing.assert_allclose(
    _jit_op["adjust_contrast"](image, factor), tf.image.adjust_contrast(image, factor), atol=ATOL
  )
  np.testing.assert_allclose(
    _jit_op["adjust_saturation"](image, factor), tf.image.adjust_saturation(image, factor), atol=ATOL
  )
  # Contrast is per channel: a 1-channel image works too.
  np.testing.assert_allclose(
    aj.adjust_contrast(image[..., :1], factor), tf.image.adjust_contrast(image[..., :1], factor), atol=ATOL
  )


@pytest.mark.parametrize("delta", [-0.5, -0.2, 0.0, 0.05, 0.2, 0.5])
def test_hue_matches_tf(delta):
  image = _edge_case_image()
  np.testing.assert_allclose(
    _jit_op["adjust_hue"](image, np.float32(delta)), tf.image.adjust_hue(image, delta), atol=ATOL
  )


def test_jitter_in_order_matches_tf_ops_in_that_order():
  """Fixed factors, three orders: op order[k] at position k, a clip after each (as augment.color_jitter)."""
  image = _float_image(6, 8, seed=6)
  factors = dict(brightness_factor=1.6, contrast_factor=0.5, saturation_factor=1.7, hue_delta=0.15)
  tf_ops = [
    lambda x: x * factors["brightness_factor"],
    lambda x: tf.image.adjust_contrast(x, factors["contrast_factor"]),
    lambda x: tf.image.adjust_saturation(x, factors["saturation_factor"]),
    lambda x: tf.image.adjust_hue(x, factors["hue_delta"]),
  ]
  for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
    expected = tf.constant(image)
    for op in order:
      expected = tf.clip_by_value(tf_ops[op](expected), 0.0, 1.0)
    out = _jit_jitter_in_order(image, jnp.array(order), **{k: np.float32(v) for k, v in factors.items()})
    np.testing.assert_allclose(out, expected.numpy(), atol=ATOL)


def test_grayscale_matches_tf():
  image = _edge_case_image()
  np.testing.assert_allclose(_jit_op["to_grayscale"](image), augment.to_grayscale(image).numpy(), atol=ATOL)
  np.testing.assert_array_equal(aj.to_grayscale(image[..., :1]), image[..., :1])


@pytest.mark.parametrize("sigma, kernel_size", [(0.1, 3), (1.0, 3), (1.0, 7), (2.0, 23)])
def test_gaussian_blur_matches_tf(sigma, kernel_size):
  image = _float_image(32, 28, seed=7)
  expected = augment.gaussian_blur(image, sigma=sigma, kernel_size=kernel_size).numpy()
  np.testing.assert_allclose(_jit_blur(image, sigma=np.float32(sigma), kernel_size=kernel_size), expected, atol=ATOL)


def test_solarize_matches_tf_and_numpy():
  image = _edge_case_image()
  image[1, :3, 0] = [0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0.0]
  x = image.astype(np.float64)
  out = np.asarray(_jit_solarize(image))
  np.testing.assert_allclose(out, np.where(x >= 0.5, 1.0 - x, x), rtol=0, atol=1e-7)
  np.testing.assert_array_equal(out, augment.solarize(image).numpy())


def test_deterministic_view_with_solarize_matches_tf_view():
  """As the test below, with solarize after the blur (p = 1): TF's view to float rounding."""
  image = _float_image(24, 24, seed=10)
  config = AugmentConfig(
    **{**ALL_OFF, "blur_prob": 1.0, "blur_sigma": (1.5, 1.5), "blur_kernel_fraction": 0.3, "solarize_prob": 1.0}
  )
  expected = augment.simclr_view(image, tf.constant([0, 0], tf.int64), config=config).numpy()
  assert (expected < 0.5 - 1e-3).mean() > 0.2  # solarized pixels are there
  np.testing.assert_allclose(_views_over_keys(config, image, 2), np.stack([expected] * 2), atol=ATOL)


def test_deterministic_view_matches_tf_view():
  """A config without randomness left gives TF's view: whole-image resize from 24 to 16, then
  flip -> grayscale -> blur at a fixed sigma, in augment's order."""
  image = _float_image(24, 24, seed=8)
  config = AugmentConfig(
    **{
      **ALL_OFF,
      "flip_prob": 1.0,
      "grayscale_prob": 1.0,
      "blur_prob": 1.0,
      "blur_sigma": (1.5, 1.5),
      "blur_kernel_fraction": 0.3,
    }
  )
  expected = augment.simclr_view(image, tf.constant([0, 0], tf.int64), config=config).numpy()
  np.testing.assert_allclose(_views_over_keys(config, image, 2), np.stack([expected] * 2), atol=ATOL)


# --------------------------------------------------------------------------- invariances


def test_batch_views_shape_dtype_range():
  config = AugmentConfig(image_size=S)  # every step on, at the default rates
  view1, view2 = _jit_batch_views(config)(_uint8_images(8, 20, 28), jax.random.key(0))
  for v in (view1, view2):
    assert v.shape == (8, S, S, 3) and v.dtype == jnp.float32
    assert 0.0 <= float(v.min()) and float(v.max()) <= 1.0
  assert (np.abs(np.asarray(view1) - np.asarray(view2)).reshape(8, -1).max(axis=1) > 1e-2).all()


def test_batch_views_depend_only_on_image_key_and_index():
  """Example i's views are a function of its image, the key and its index alone.

  Also: uint8 in is float / 255 in, and the train state's raw uint32 key data works as
  the typed key (checked in the same call, to compile once).
  """
  images = _uint8_images(8, 20, 28, seed=1)
  key = jax.random.key(3)
  run = _jit_batch_views(CROP_FLIP)
  view1, view2 = map(np.asarray, run(images, key))
  np.testing.assert_array_equal(run(images, key)[0], view1)  # same key, same views
  # A shuffled batch with its global indices: every example keeps its views.
  perm = np.array([5, 2, 7, 0, 1, 6, 3, 4])
  shuffled = run(images[perm].astype(np.float32) / 255.0, jax.random.key_data(key), indices=jnp.asarray(perm))
  np.testing.assert_allclose(shuffled[0], view1[perm], atol=1e-6)
  np.testing.assert_allclose(shuffled[1], view2[perm], atol=1e-6)
  # The other examples' content does not matter either.
  others_black = images.copy()
  others_black[np.arange(8) != 3] = 0
  np.testing.assert_array_equal(run(others_black, key)[0][3], view1[3])
  # Another key: other views; and the two views of an image differ.
  other = np.asarray(run(images, jax.random.key(4))[0])
  assert (np.abs(other - view1).reshape(8, -1).max(axis=1) > 1e-2).all()
  assert (np.abs(view2 - view1).reshape(8, -1).max(axis=1) > 1e-2).all()
  # The key contract: example i's views are simclr_view at split(fold_in(key, i)).
  for i in (0, 5):
    keys = jax.random.split(jax.random.fold_in(key, i))
    expected = _views_over_keys(CROP_FLIP, images[i].astype(np.float32) / 255.0, 2, keys=keys)
    np.testing.assert_allclose(view1[i], expected[0], atol=1e-6)
    np.testing.assert_allclose(view2[i], expected[1], atol=1e-6)


def test_single_channel_views_under_jit():
  config = AugmentConfig(image_size=S, jitter_prob=1.0, grayscale_prob=1.0, blur_prob=1.0)
  view1, view2 = _jit_batch_views(config)(_uint8_images(4, 28, 28, channels=1), jax.random.key(1))
  assert view1.shape == view2.shape == (4, S, S, 1) and view1.dtype == jnp.float32
  assert 0.0 <= float(view1.min()) and float(view1.max()) <= 1.0
  assert np.abs(np.asarray(view1) - np.asarray(view2)).max() > 1e-2
