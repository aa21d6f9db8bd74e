"""sRGB <-> Lab against scikit-image (float64), round trips, gray images and jit."""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color as skcolor

from jssl.ops.color import gray_image, lab_to_rgb, rgb_to_lab

CORNERS = np.array(list(itertools.product([0.0, 1.0], repeat=3)))  # [8, 3]


def random_images(seed, shape=(2, 16, 16, 3)):
  return np.random.default_rng(seed).uniform(size=shape)


@pytest.mark.parametrize("seed", [0, 1])
def test_rgb_to_lab_matches_skimage_on_random_images(seed):
  rgb = random_images(seed)
  # float32 cube roots of values <= 1.09, scaled by <= 500: ~1e-4 Lab units.
  np.testing.assert_allclose(rgb_to_lab(jnp.asarray(rgb, jnp.float32)), skcolor.rgb2lab(rgb), atol=1e-3)


def test_rgb_to_lab_matches_skimage_on_cube_corners():
  lab = np.asarray(rgb_to_lab(CORNERS))
  np.testing.assert_allclose(lab, skcolor.rgb2lab(CORNERS), atol=1e-3)
  np.testing.assert_allclose(lab[-1, 0], 100.0, atol=1e-4)  # white
  np.testing.assert_allclose(lab[0], 0.0, atol=1e-6)  # black
  np.testing.assert_allclose(lab[4], [53.2408, 80.0925, 67.2032], atol=1e-3)  # pure red, the textbook value


def test_dark_colours_on_the_linear_segments_match_skimage():
  # Below the sRGB knee (0.04045) and below Lab's (6/29)^3: both linear pieces.
  rgb = np.random.default_rng(2).uniform(0.0, 0.05, size=(64, 3))
  np.testing.assert_allclose(rgb_to_lab(rgb), skcolor.rgb2lab(rgb), atol=1e-3)
  np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-5)


def test_lab_to_rgb_matches_skimage_in_gamut():
  lab = skcolor.rgb2lab(random_images(3))
  np.testing.assert_allclose(lab_to_rgb(jnp.asarray(lab, jnp.float32)), skcolor.lab2rgb(lab), atol=1e-4)


def test_lab_to_rgb_matches_skimage_out_of_gamut():
  rng = np.random.default_rng(4)
  lab = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-128, 128, 2000), rng.uniform(-128, 128, 2000)], -1)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # skimage warns about the negative Z values it clamps
    expected = skcolor.lab2rgb(lab)
  got = np.asarray(lab_to_rgb(lab))
  assert np.any(got == 0.0) and np.any(got == 1.0)  # the sample really leaves the gamut
  np.testing.assert_allclose(got, expected, atol=1e-4)


def test_round_trip():
  rgb = np.concatenate([random_images(5).reshape(-1, 3), CORNERS])
  np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)


def test_gray_image_has_equal_channels_and_the_input_lightness():
  rgb = random_images(6)
  gray = np.asarray(gray_image(rgb))
  assert gray.shape == rgb.shape
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  gray_lab = skcolor.rgb2lab(gray.astype(np.float64))
  np.testing.assert_allclose(gray_lab[..., 0], skcolor.rgb2lab(rgb)[..., 0], atol=1e-3)
  # Not exactly 0: the sRGB matrix maps white to within 5e-3 ab of D65 (skimage agrees).
  np.testing.assert_allclose(gray_lab[..., 1:], 0.0, atol=1e-2)
  lightness = skcolor.rgb2lab(rgb)[..., :1]
  lab_gray = np.concatenate([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], axis=-1)
  np.testing.assert_allclose(gray, skcolor.lab2rgb(lab_gray), atol=1e-4)


def test_gray_image_of_gray_is_itself():
  levels = np.linspace(0, 1, 11)
  rgb = np.repeat(levels[:, None], 3, axis=1)
  np.testing.assert_allclose(gray_image(rgb), rgb, atol=1e-6)


def test_jit_and_vmap_agree_with_eager():
  rgb = jnp.asarray(random_images(7), jnp.float32)
  lab = rgb_to_lab(rgb)
  np.testing.assert_allclose(jax.jit(rgb_to_lab)(rgb), lab, atol=1e-4)
  np.testing.assert_allclose(jax.jit(jax.vmap(lab_to_rgb))(lab), lab_to_rgb(lab), atol=1e-6)
  np.testing.assert_allclose(jax.jit(gray_image)(rgb), gray_image(rgb), atol=1e-6)


def test_gradients_are_finite_at_the_corners_and_the_knees():
  rgb = jnp.asarray(np.concatenate([CORNERS, np.full((1, 3), 0.04045), np.full((1, 3), 1e-6)]), jnp.float32)
  # Jitted: eager autodiff dispatches (and compiles) every primitive separately, which is slow.
  grad_lab = jax.jit(jax.grad(lambda x: jnp.sum(rgb_to_lab(x))))(rgb)
  grad_rgb = jax.jit(jax.grad(lambda lab: jnp.sum(lab_to_rgb(lab))))(rgb_to_lab(rgb))
  grad_gray = jax.jit(jax.grad(lambda x: jnp.sum(gray_image(x))))(rgb)
  assert np.all(np.isfinite(grad_lab)) and np.all(np.isfinite(grad_rgb)) and np.all(np.isfinite(grad_gray))


@pytest.mark.parametrize("fn", [rgb_to_lab, lab_to_rgb, gray_image])
def test_rejects_wrong_channel_count(fn):
  with pytest.raises(ValueError, match="channel"):
    fn(jnp.zeros((4, 4, 2)))
