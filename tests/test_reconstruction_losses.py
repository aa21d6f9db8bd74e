"""Pixel, masked and adversarial losses against float64 NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from jssl.losses import reconstruction as losses


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


@pytest.fixture
def pair():
  rng = np.random.default_rng(0)
  return rng.random((3, 8, 8, 3)), rng.random((3, 8, 8, 3))


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_pixel_loss_matches_numpy(pair, kind):
  pred, target = pair
  expected = np.mean(np.abs(pred - target)) if kind == "l1" else np.mean((pred - target) ** 2)
  got = losses.pixel_loss(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), kind=kind)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  with pytest.raises(ValueError, match="'l1' or 'l2'"):
    losses.pixel_loss(jnp.zeros(2), jnp.zeros(2), kind="l3")


def test_masked_l2_matches_numpy_and_ignores_unmasked_pixels(pair):
  pred, target = pair
  mask = (np.random.default_rng(1).random((3, 8, 8, 1)) < 0.3).astype(np.float64)
  expected = np.sum((pred - target) ** 2 * mask) / (mask.sum() * 3)
  got = losses.masked_l2(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), jnp.asarray(mask))
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  # Anything at all where the mask is 0 changes nothing.
  scribbled = np.where(mask > 0, pred, 1e3 * np.random.default_rng(2).standard_normal(pred.shape))
  np.testing.assert_allclose(
    float(losses.masked_l2(jnp.asarray(scribbled, jnp.float32), jnp.asarray(target, jnp.float32), jnp.asarray(mask))),
    expected,
    rtol=1e-5,
  )
  assert float(losses.masked_l2(jnp.ones((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 1)))) == 0.0


def test_adversarial_losses_match_numpy_and_point_the_right_way():
  rng = np.random.default_rng(3)
  real, fake = rng.normal(size=16) * 3, rng.normal(size=16) * 3
  d = losses.discriminator_loss(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32))
  g = losses.generator_loss(jnp.asarray(fake, jnp.float32))
  # -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x).
  np.testing.assert_allclose(float(d), np.mean(_softplus(-real)) + np.mean(_softplus(fake)), rtol=1e-5)
  np.testing.assert_allclose(float(g), np.mean(_softplus(-fake)), rtol=1e-5)
  # A discriminator that scores real high and fake low has a low loss; the generator the opposite.
  assert float(losses.discriminator_loss(jnp.full(4, 5.0), jnp.full(4, -5.0))) < 0.02
  assert float(losses.generator_loss(jnp.full(4, -5.0))) > 4.9
