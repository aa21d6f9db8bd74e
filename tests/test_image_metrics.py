"""PSNR and SSIM against scikit-image, colourfulness against a float64 NumPy reference."""

import jax
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jssl.image_metrics import colourfulness, masked_psnr, psnr, ssim

# Eager SSIM dispatches (and compiles) ~100 small ops per new shape; jitted it is one compile.
jit_ssim = jax.jit(ssim, static_argnames="max_value")


def noisy_pair(seed, shape, noise, max_value=1.0):
  rng = np.random.default_rng(seed)
  target = rng.uniform(0, max_value, size=shape)
  pred = np.clip(target + noise * max_value * rng.normal(size=shape), 0, max_value)
  return pred, target


def skimage_ssim(pred, target, max_value):
  return np.array(
    [
      structural_similarity(
        p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=max_value, channel_axis=-1
      )
      for p, t in zip(pred, target)
    ]
  )


def reference_colourfulness(rgb):
  """Hasler & Suesstrunk (2003) as written in the paper, float64, one image at a time."""
  out = []
  for image in 255.0 * rgb.astype(np.float64):
    r, g, b = image[..., 0].ravel(), image[..., 1].ravel(), image[..., 2].ravel()
    rg, yb = r - g, 0.5 * (r + g) - b
    out.append(np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2) + 0.3 * np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2))
  return np.array(out)


@pytest.mark.parametrize("max_value", [1.0, 255.0])
def test_psnr_matches_skimage(max_value):
  pred, target = noisy_pair(0, (3, 16, 16, 3), 0.1, max_value)
  expected = [peak_signal_noise_ratio(t, p, data_range=max_value) for p, t in zip(pred, target)]
  np.testing.assert_allclose(psnr(pred, target, max_value=max_value), expected, rtol=1e-5)


def test_masked_psnr_matches_numpy_over_the_masked_pixels_only():
  rng = np.random.default_rng(3)
  target = rng.random((3, 8, 8, 3)).astype(np.float32)
  prediction = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1).astype(np.float32)
  mask = (rng.random((3, 8, 8, 1)) < 0.3).astype(np.float32)
  outside = prediction + (1 - mask) * 0.5  # errors off the mask must not count
  got = np.asarray(masked_psnr(outside, target, mask))
  squared = ((prediction.astype(np.float64) - target) ** 2 * mask).sum(axis=(1, 2, 3))
  expected = 10 * np.log10(1 / (squared / (mask.sum(axis=(1, 2, 3)) * 3)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  full = np.ones_like(mask)
  np.testing.assert_allclose(masked_psnr(prediction, target, full), psnr(prediction, target), rtol=1e-5)


def test_psnr_increases_as_noise_decreases():
  values = [float(psnr(*noisy_pair(1, (1, 16, 16, 3), noise))[0]) for noise in (0.3, 0.1, 0.03, 0.01)]
  assert np.all(np.diff(values) > 0)


@pytest.mark.parametrize("size,channels", [(16, 3), (16, 1), (32, 3), (32, 1), (11, 1)])
def test_ssim_matches_skimage(size, channels):
  pred, target = noisy_pair(size + channels, (3, size, size, channels), 0.2)
  np.testing.assert_allclose(jit_ssim(pred, target), skimage_ssim(pred, target, 1.0), atol=1e-4)


def test_ssim_matches_skimage_on_the_0_255_scale_and_non_square_images():
  pred, target = noisy_pair(2, (2, 20, 27, 3), 0.1, max_value=255.0)
  np.testing.assert_allclose(jit_ssim(pred, target, max_value=255.0), skimage_ssim(pred, target, 255.0), atol=1e-4)


def test_ssim_of_an_image_with_itself_is_one_and_falls_with_noise():
  image, _ = noisy_pair(3, (2, 16, 16, 3), 0.0)
  np.testing.assert_allclose(jit_ssim(image, image), 1.0, atol=1e-6)
  values = [float(jit_ssim(*noisy_pair(4, (1, 16, 16, 3), noise))[0]) for noise in (0.01, 0.1, 0.3)]
  assert values[0] > values[1] > values[2]


def test_ssim_and_psnr_jit():
  pred, target = noisy_pair(5, (2, 16, 16, 3), 0.1)
  np.testing.assert_allclose(jax.jit(ssim)(pred, target), ssim(pred, target), atol=1e-6)
  np.testing.assert_allclose(jax.jit(psnr)(pred, target), psnr(pred, target), rtol=1e-6)


def test_ssim_rejects_images_smaller_than_the_window():
  with pytest.raises(ValueError, match="at least 11x11"):
    ssim(np.zeros((1, 10, 16, 3)), np.zeros((1, 10, 16, 3)))


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_rejects_bad_shapes(fn):
  with pytest.raises(ValueError):
    fn(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 1)))
  with pytest.raises(ValueError):
    fn(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)))


def test_colourfulness_matches_float64_reference():
  rng = np.random.default_rng(6)
  rgb = np.concatenate([rng.uniform(size=(2, 16, 16, 3)), rng.uniform(0.4, 0.6, size=(1, 16, 16, 3))])
  rgb[1, ..., 0] = np.clip(rgb[1, ..., 0] + 0.5, 0, 1)  # a reddish image: the mean term matters
  np.testing.assert_allclose(colourfulness(rgb), reference_colourfulness(rgb), rtol=1e-5)


def test_colourfulness_known_values():
  gray = np.repeat(np.random.default_rng(7).uniform(size=(2, 8, 8, 1)), 3, axis=-1)
  np.testing.assert_array_equal(colourfulness(gray), 0.0)
  red = np.zeros((1, 8, 8, 3))
  red[..., 0] = 1.0
  # Constant colour: no spread, rg = 255 and yb = 127.5 everywhere.
  np.testing.assert_allclose(colourfulness(red), 0.3 * np.hypot(255.0, 127.5), rtol=1e-6)


def test_colourfulness_rejects_non_rgb():
  with pytest.raises(ValueError):
    colourfulness(np.zeros((1, 8, 8, 1)))
