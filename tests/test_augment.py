"""Tests of the SimCLR view augmentation (jssl.data.augment)."""

import time

import numpy as np
import pytest
import tensorflow as tf

from jssl.data import augment
from jssl.data.augment import AugmentConfig

S = 32
# Every random step off and the crop forced to the whole image: a view is then a
# plain resize. Individual tests switch one step back on.
ALL_OFF = dict(
  image_size=S,
  crop_area=(1.0, 1.0),
  crop_aspect=(1.0, 1.0),
  flip_prob=0.0,
  jitter_prob=0.0,
  grayscale_prob=0.0,
  blur_prob=0.0,
)


def _uint8_image(height, width, channels=3, *, seed=0):
  return np.random.RandomState(seed).randint(0, 256, size=(height, width, channels)).astype(np.uint8)


def _float_image(height, width, channels=3, *, seed=0, low=0.0, high=1.0):
  return np.random.RandomState(seed).uniform(low, high, size=(height, width, channels)).astype(np.float32)


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


def _map_over_seeds(fn, num, *, base=12345):
  """Stacks ``fn(seed)`` for seeds ``[base, i]``, i < num, computed in a graph-mode tf.data map."""
  ds = tf.data.Dataset.range(num).map(
    lambda i: fn(tf.stack([tf.constant(base, tf.int64), i])), num_parallel_calls=tf.data.AUTOTUNE
  )
  return next(iter(ds.batch(num).as_numpy_iterator()))


def _total_variation(x):
  x = np.asarray(x, np.float64)
  return np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()


# --------------------------------------------------------------------------- config


def test_config_from_dict_accepts_lists_and_rejects_unknown_fields():
  config = AugmentConfig.from_dict({"image_size": 28, "crop_area": [0.2, 1.0], "blur_prob": 0.0})
  assert config == AugmentConfig(image_size=28, crop_area=(0.2, 1.0), blur_prob=0.0)
  assert isinstance(config.crop_area, tuple)
  hash(config)  # frozen and hashable, so usable as a static jit/cache key
  with pytest.raises(ValueError, match="crop_scale"):
    AugmentConfig.from_dict({"crop_scale": (0.1, 1.0)})


@pytest.mark.parametrize(
  "field, value",
  [
    ("image_size", 0),
    ("image_size", 32.0),
    ("flip_prob", 1.5),
    ("jitter_prob", -0.1),
    ("grayscale_prob", 2.0),
    ("blur_prob", -1.0),
    ("solarize_prob", 1.5),
    ("crop_area", (0.9, 0.1)),
    ("crop_area", (0.0, 1.0)),
    ("crop_area", (0.5, 1.5)),
    ("crop_min_covered", -0.1),
    ("crop_min_covered", 1.5),
    ("crop_aspect", (4 / 3, 3 / 4)),
    ("blur_sigma", (2.0, 0.1)),
    ("jitter_strength", -1.0),
  ],
)
def test_config_validation_names_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    AugmentConfig(**{field: value})


@pytest.mark.parametrize("image_size, fraction, expected", [(32, 0.1, 3), (224, 0.1, 23), (96, 0.1, 11), (64, 0.1, 7)])
def test_blur_kernel_size_is_odd_and_at_least_3(image_size, fraction, expected):
  assert AugmentConfig(image_size=image_size, blur_kernel_fraction=fraction).blur_kernel_size == expected


# --------------------------------------------------------------------------- shapes, dtypes, ranges


@pytest.mark.parametrize("height, width", [(20, 20), (32, 32), (64, 64), (40, 24), (17, 50)])
def test_view_shape_dtype_and_range(height, width):
  config = AugmentConfig(image_size=S, blur_prob=0.5)
  image = augment.to_float_rgb(_uint8_image(height, width))
  for i in range(4):
    view = augment.simclr_view(image, _seed(i), config=config).numpy()
    assert view.shape == (S, S, 3)
    assert view.dtype == np.float32
    assert view.min() >= 0.0 and view.max() <= 1.0


def test_to_float_rgb_scales_and_repeats_grayscale():
  gray = _uint8_image(28, 28, 1)
  rgb = augment.to_float_rgb(gray).numpy()
  assert rgb.shape == (28, 28, 3) and rgb.dtype == np.float32
  np.testing.assert_allclose(rgb, np.repeat(gray, 3, axis=-1) / 255.0, atol=1e-6)
  kept = augment.to_float_rgb(gray, grayscale_to_rgb=False).numpy()
  assert kept.shape == (28, 28, 1)
  # Grayscale repeated to RGB stays grayscale through the view's defaults, shape [S, S, 3].
  view = augment.simclr_view(rgb, _seed(3), config=AugmentConfig(image_size=S)).numpy()
  assert view.shape == (S, S, 3)


def test_single_channel_views_keep_one_channel():
  image = augment.to_float_rgb(_uint8_image(28, 28, 1), grayscale_to_rgb=False)
  config = AugmentConfig(image_size=28, jitter_prob=1.0, grayscale_prob=1.0, blur_prob=1.0)
  view = augment.simclr_view(image, _seed(5), config=config).numpy()
  assert view.shape == (28, 28, 1)
  assert 0.0 <= view.min() and view.max() <= 1.0


def test_center_resize_crops_the_central_square():
  # Rows 0-7 and 32-39 are white, the central 24x24 square is black: the eval view must be all black.
  image = np.zeros((40, 24, 3), np.float32)
  image[:8] = 1.0
  image[32:] = 1.0
  out = augment.center_resize(image, image_size=S).numpy()
  assert out.shape == (S, S, 3)
  np.testing.assert_allclose(out, 0.0, atol=1e-6)
  # Wide images too.
  out = augment.center_resize(np.transpose(image, (1, 0, 2)), image_size=12).numpy()
  np.testing.assert_allclose(out, 0.0, atol=1e-6)


# --------------------------------------------------------------------------- determinism


def test_two_views_differ():
  image = augment.to_float_rgb(_uint8_image(S, S))
  view_a, view_b = augment.two_views(image, _seed(0), config=AugmentConfig(image_size=S))
  assert view_a.shape == view_b.shape == (S, S, 3)
  assert np.abs(view_a.numpy() - view_b.numpy()).max() > 1e-2


def test_same_seed_same_view_different_seed_different_view():
  config = AugmentConfig(image_size=S, blur_prob=0.5)
  image = augment.to_float_rgb(_uint8_image(48, 40))
  first = augment.simclr_view(image, _seed(7, 1), config=config).numpy()
  again = augment.simclr_view(image, _seed(7, 1), config=config).numpy()
  np.testing.assert_array_equal(first, again)
  # int32 and int64 seeds with the same value agree.
  np.testing.assert_array_equal(first, augment.simclr_view(image, tf.constant([7, 1], tf.int32), config=config))
  for other in [_seed(7, 2), _seed(8, 1), _seed(1, 7)]:
    assert np.abs(augment.simclr_view(image, other, config=config).numpy() - first).max() > 1e-2


def test_deterministic_inside_tf_data_map():
  config = AugmentConfig(image_size=S, blur_prob=0.5)
  images = np.stack([_uint8_image(36, 30, seed=i) for i in range(16)])

  def run(parallel):
    ds = tf.data.Dataset.from_tensor_slices(images).enumerate()
    # Without AutoGraph, as jssl's pipeline maps (the augmentations branch with tf.cond).
    make = tf.autograph.experimental.do_not_convert(
      lambda i, x: augment.two_views(augment.to_float_rgb(x), tf.stack([tf.constant(99, tf.int64), i]), config=config)
    )
    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE if parallel else None)
    return [np.stack(v) for v in zip(*ds.as_numpy_iterator())]

  a1, b1 = run(parallel=True)
  a2, b2 = run(parallel=True)
  a3, b3 = run(parallel=False)
  assert a1.shape == (16, S, S, 3)
  np.testing.assert_array_equal(a1, a2)
  np.testing.assert_array_equal(b1, b2)
  np.testing.assert_array_equal(a1, a3)
  np.testing.assert_array_equal(b1, b3)
  # Graph mode (tf.data) and eager give the same view for the same seed.
  eager_a, _ = augment.two_views(augment.to_float_rgb(images[3]), _seed(99, 3), config=config)
  np.testing.assert_allclose(a1[3], eager_a.numpy(), atol=1e-6)


# --------------------------------------------------------------------------- individual steps


def test_all_off_equals_center_resize():
  config = AugmentConfig(**ALL_OFF)
  for height in (20, 32, 50):  # upsampled, same size, downsampled (square inputs: the crop is the whole image)
    image = augment.to_float_rgb(_uint8_image(height, height, seed=height))
    view = augment.simclr_view(image, _seed(height), config=config).numpy()
    expected = augment.center_resize(image, image_size=S).numpy()
    np.testing.assert_allclose(view, expected, atol=1e-6)


def test_flip_prob_one_mirrors():
  config = AugmentConfig(**{**ALL_OFF, "flip_prob": 1.0})
  image = _float_image(S, S)
  for i in range(3):
    view = augment.simclr_view(image, _seed(i), config=config).numpy()
    np.testing.assert_allclose(view, image[:, ::-1], atol=1e-6)  # same-size bicubic resize is exact


def test_grayscale_prob_one_gives_equal_channels():
  config = AugmentConfig(**{**ALL_OFF, "grayscale_prob": 1.0, "jitter_prob": 1.0, "flip_prob": 0.5})
  image = _float_image(S, S)
  for i in range(3):
    view = augment.simclr_view(image, _seed(i), config=config).numpy()
    np.testing.assert_allclose(view[..., 0], view[..., 1], atol=1e-6)
    np.testing.assert_allclose(view[..., 0], view[..., 2], atol=1e-6)
    assert view.std() > 1e-2  # not flattened to a constant


def test_apply_probabilities_match_the_config():
  """Fractions of views touched by jitter (p=0.8) and grayscale (p=0.2) over 400 seeds.

  Binomial standard deviation at n=400 is 0.02; tolerance 0.07 (3.5 sigma).
  """
  image = _float_image(16, 16, low=0.2, high=0.8)
  plain = augment.center_resize(image, image_size=16).numpy()
  n = 400

  def changed_fraction(**overrides):
    config = AugmentConfig(**{**ALL_OFF, "image_size": 16, **overrides})
    views = _map_over_seeds(lambda s: augment.simclr_view(image, s, config=config), n)
    return np.mean(np.abs(views - plain).reshape(n, -1).max(axis=1) > 1e-5)

  assert abs(changed_fraction(jitter_prob=0.8) - 0.8) < 0.07
  assert abs(changed_fraction(grayscale_prob=0.2) - 0.2) < 0.07
  assert abs(changed_fraction(flip_prob=0.5) - 0.5) < 0.08  # sd 0.025
  assert abs(changed_fraction(solarize_prob=0.2) - 0.2) < 0.07  # the image has values >= 0.5 to invert


def test_crop_area_fraction_statistics():
  """Sampled crop areas over 500 seeds on a 32x32 image.

  Every area lies in [0.08, 1] (min_object_covered=0.1 further floors it at 0.1). TF
  samples the crop *height* uniformly, so areas are skewed small: the mean measured
  over 5000 seeds is 0.434 (sd 0.235); the mean of 500 has sd 0.011, tolerance 0.05.
  """

  def area(seed):
    _, size = augment.sample_crop_box(
      tf.constant([32, 32, 3]), seed, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3)
    )
    return tf.cast(size[0] * size[1], tf.float32) / (32.0 * 32.0)

  areas = _map_over_seeds(area, 500)
  assert areas.min() >= 0.08 and areas.max() <= 1.0
  assert areas.min() < 0.2 and areas.max() > 0.9  # the whole range is explored
  assert abs(areas.mean() - 0.434) < 0.05


def test_crop_min_covered_floors_the_area_or_leaves_the_range_alone():
  """Crop areas over 300 seeds on a 64x64 image with area range (0.05, 0.14): SwAV's local crops.

  SimCLR's ``min_covered`` 0.1 (the default, ``AugmentConfig``'s too) floors every area at
  0.1; 0 (torchvision's ``RandomResizedCrop``) leaves the whole range: TF draws the height
  uniformly among the integers whose area fits, so 57% of these 300 areas lie below 0.1 and
  the least is 0.051.
  """
  assert AugmentConfig().crop_min_covered == augment.SIMCLR_MIN_COVERED == 0.1

  def areas(**floor):
    def area(seed):
      _, size = augment.sample_crop_box(
        tf.constant([64, 64, 3]), seed, area_range=(0.05, 0.14), aspect_range=(3 / 4, 4 / 3), **floor
      )
      return tf.cast(size[0] * size[1], tf.float32) / (64.0 * 64.0)

    return _map_over_seeds(area, 300)

  floored, default, free = areas(min_covered=0.1), areas(), areas(min_covered=0.0)
  np.testing.assert_array_equal(floored, default)
  assert floored.min() >= 0.1 and floored.max() <= 0.14
  assert free.min() >= 0.05 and free.max() <= 0.14
  assert free.min() < 0.06 and np.mean(free < 0.1) > 0.4


def test_crop_of_structured_image_respects_area_range():
  """Measures the crop on the image itself: pixel (y, x) encodes its coordinates.

  With no resizing distortion in the encoding, the crop's corner pixels give its size.
  """
  side = 64
  ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  image = np.stack([ys, xs, np.zeros_like(ys)], axis=-1).astype(np.float32) / (side - 1)
  for i in range(20):
    begin, size = augment.sample_crop_box(
      tf.constant([side, side, 3]), _seed(i), area_range=(0.3, 0.5), aspect_range=(1.0, 1.0)
    )
    crop = tf.slice(image, begin, size).numpy()
    height = round((crop[-1, 0, 0] - crop[0, 0, 0]) * (side - 1)) + 1
    width = round((crop[0, -1, 1] - crop[0, 0, 1]) * (side - 1)) + 1
    assert height == width  # aspect 1
    assert 0.3 - 0.03 <= height * width / side**2 <= 0.5 + 0.03  # +-1 pixel rounding


def test_brightness_jitter_statistics():
  """Brightness alone (b = 0.8) scales the image by f ~ U[0.2, 1.8] over 400 seeds.

  The image lies in [0.1, 0.5] so f <= 1.8 never clips; the change of the mean is then
  m * (f - 1): mean 0 and sd m * 1.6 / sqrt(12). Tolerances: |mean| < 4 standard
  errors; sample sd within 15% (its own sd is ~3%); factors within [0.2, 1.8].
  """
  image = _float_image(16, 16, low=0.1, high=0.5)
  m = float(image.mean())
  n = 400
  views = _map_over_seeds(
    lambda s: augment.color_jitter(image, s, brightness=0.8, contrast=0.0, saturation=0.0, hue=0.0), n
  )
  factors = views.reshape(n, -1).mean(axis=1) / m
  # Brightness is a pure scaling: every pixel moved by the same factor.
  np.testing.assert_allclose(views, factors[:, None, None, None] * image, atol=1e-5)
  change = views.reshape(n, -1).mean(axis=1) - m
  expected_sd = m * 1.6 / np.sqrt(12.0)
  assert abs(change.mean()) < 4 * expected_sd / np.sqrt(n)
  assert abs(change.std() / expected_sd - 1.0) < 0.15
  assert factors.min() >= 0.2 - 1e-5 and factors.max() <= 1.8 + 1e-5


def test_full_jitter_keeps_mean_brightness_roughly_unbiased_and_in_range():
  """All four jitter ops (s = 1) over 300 seeds on a mid-grey-ish colour image.

  Contrast and saturation keep the mean, brightness scales it around 1, so the mean
  change should be small relative to its spread (|mean| < 0.04, sd in (0.05, 0.25)).
  """
  image = _float_image(16, 16, low=0.3, high=0.6)
  views = _map_over_seeds(
    lambda s: augment.color_jitter(image, s, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2), 300
  )
  assert views.min() >= 0.0 and views.max() <= 1.0
  change = views.reshape(300, -1).mean(axis=1) - image.mean()
  assert abs(change.mean()) < 0.04
  assert 0.05 < change.std() < 0.25


def test_blur_reduces_total_variation_of_a_checkerboard():
  ys, xs = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
  board = np.repeat(((ys + xs) % 2).astype(np.float32)[..., None], 3, axis=-1)
  tv = _total_variation(board)
  strong = AugmentConfig(**{**ALL_OFF, "blur_prob": 1.0, "blur_sigma": (0.5, 2.0)})
  default_sigma = AugmentConfig(**{**ALL_OFF, "blur_prob": 1.0})
  for i in range(5):
    blurred = augment.simclr_view(board, _seed(i), config=strong).numpy()
    assert _total_variation(blurred) < 0.5 * tv  # sigma >= 0.5 with a 3-tap kernel: ratio <= 0.33
    assert abs(blurred.mean() - board.mean()) < 0.02
    assert _total_variation(augment.simclr_view(board, _seed(i), config=default_sigma).numpy()) <= tv + 1e-3


def test_solarize_matches_numpy_reference():
  """x -> 1 - x where x >= 0.5 (0.5 itself included), against float64 NumPy; idempotent, <= 0.5."""
  image = _float_image(12, 10, seed=4)
  image[0, :4, 0] = [0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0.0, 1.0]
  out = augment.solarize(image).numpy()
  x = image.astype(np.float64)
  np.testing.assert_allclose(out, np.where(x >= 0.5, 1.0 - x, x), rtol=0, atol=1e-7)
  assert out[0, 0, 0] == 0.5 and out[0, 1, 0] == image[0, 1, 0] and out[0, 3, 0] == 0.0
  assert out.max() <= 0.5
  np.testing.assert_array_equal(augment.solarize(out).numpy(), out)


def test_solarize_draws_its_own_coin():
  """Turning solarize on changes no other decision: with p = 1 the view is solarize(the view
  with p = 0) for the same seed, and with p = 0.5 each view is one of the two, both seen."""
  image = _float_image(24, 20, seed=5)
  base = dict(image_size=S, blur_prob=0.5)
  seeds = [_seed(11, i) for i in range(12)]
  plain = [augment.simclr_view(image, s, config=AugmentConfig(**base)).numpy() for s in seeds]
  always = [augment.simclr_view(image, s, config=AugmentConfig(**base, solarize_prob=1.0)).numpy() for s in seeds]
  half = [augment.simclr_view(image, s, config=AugmentConfig(**base, solarize_prob=0.5)).numpy() for s in seeds]
  outcomes = []
  for p, a, h in zip(plain, always, half):
    np.testing.assert_array_equal(a, augment.solarize(p).numpy())
    assert np.array_equal(h, p) or np.array_equal(h, a)
    outcomes.append(np.array_equal(h, a))
  assert 0 < sum(outcomes) < len(outcomes)


def _blur_and_solarize_seen(views, image):
  """Per view of ``image`` (crop off, values in [0.55, 0.95]): (blurred, solarized).

  Solarize inverts every pixel (the mean drops below 0.5) and keeps the total variation;
  the blur keeps the pixels in [0.55, 0.95] and lowers the total variation.
  """
  n = len(views)
  tv = np.array([_total_variation(v) for v in views])
  return tv < _total_variation(image) * (1 - 1e-3), views.reshape(n, -1).mean(axis=1) < 0.5


# BYOL's asymmetric views on an augmentation that is otherwise off (crop: the whole image).
BYOL_VIEWS = (
  AugmentConfig(**{**ALL_OFF, "image_size": 16, "blur_sigma": (0.5, 2.0), "blur_prob": 1.0}),
  AugmentConfig(**{**ALL_OFF, "image_size": 16, "blur_sigma": (0.5, 2.0), "blur_prob": 0.1, "solarize_prob": 0.2}),
)


def test_per_view_configs_give_each_view_its_rates():
  """BYOL's views over 1000 seeds: view 1 always blurred, never solarized; view 2 blurred at
  0.1, solarized at 0.2, both at 0.02 (independent). Tolerance 4 binomial sd (<= 0.051)."""
  image = _float_image(16, 16, seed=6, low=0.55, high=0.95)
  n = 1000
  view1, view2 = _map_over_seeds(lambda s: augment.views(image, s, configs=BYOL_VIEWS), n)
  blurred1, solarized1 = _blur_and_solarize_seen(view1, image)
  blurred2, solarized2 = _blur_and_solarize_seen(view2, image)
  assert blurred1.all() and not solarized1.any()
  for seen, p in [(blurred2, 0.1), (solarized2, 0.2), (blurred2 & solarized2, 0.02)]:
    assert abs(seen.mean() - p) < 4 * np.sqrt(p * (1 - p) / n), (seen.mean(), p)
  # views() splits the seed as two_views does: its view i is simclr_view at split i.
  seeds = tf.random.experimental.stateless_split(tf.constant([12345, 7], tf.int64), 2)
  np.testing.assert_array_equal(view2[7], augment.simclr_view(image, seeds[1], config=BYOL_VIEWS[1]).numpy())
  a, b = augment.two_views(image, _seed(3), config=BYOL_VIEWS[1])
  c, d = augment.views(image, _seed(3), configs=BYOL_VIEWS[1:] * 2)
  np.testing.assert_array_equal(a, c)
  np.testing.assert_array_equal(b, d)


def test_gaussian_blur_keeps_constant_images_and_borders():
  image = np.full((S, S, 3), 0.7, np.float32)
  out = augment.gaussian_blur(image, sigma=2.0, kernel_size=7).numpy()
  np.testing.assert_allclose(out, image, atol=1e-6)  # mirror padding: no dark border


# --------------------------------------------------------------------------- throughput (printed)


@pytest.mark.slow  # a benchmark smoke: the views themselves are tested above
@pytest.mark.parametrize("name, shape, image_size", [("28x28 gray", (28, 28, 1), 28), ("32x32 rgb", (32, 32, 3), 32)])
def test_two_views_throughput(name, shape, image_size):
  config = AugmentConfig(image_size=image_size, blur_prob=0.0)
  images = np.stack([_uint8_image(*shape, seed=i) for i in range(256)])
  n = 2048
  ds = tf.data.Dataset.from_tensor_slices(images).repeat().take(n).enumerate()
  ds = (
    ds.map(
      lambda i, x: augment.two_views(augment.to_float_rgb(x), tf.stack([tf.constant(0, tf.int64), i]), config=config),
      num_parallel_calls=tf.data.AUTOTUNE,
    )
    .batch(256)
    .prefetch(tf.data.AUTOTUNE)
  )
  for _ in ds.take(1):  # trace and warm up
    pass
  start = time.perf_counter()
  count = sum(int(a.shape[0]) for a, _ in ds)
  elapsed = time.perf_counter() - start
  assert count == n
  print(
    f"\ntwo_views throughput, {name} -> {image_size}x{image_size}x3, blur off: "
    f"{count / elapsed:,.0f} images/s ({2 * count / elapsed:,.0f} views/s)"
  )
