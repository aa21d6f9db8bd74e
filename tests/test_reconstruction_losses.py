"""Pixel, masked and adversarial losses against float64 NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from jssl.losses import reconstruction as losses
from jssl.ops import masks


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


def _ring64(mask, width):
  """Pixels within ``width`` (Chebyshev distance) of a masked pixel and not masked: loops."""
  n, h, w, _ = mask.shape
  ring = np.zeros_like(mask)
  for b in range(n):
    for i in range(h):
      for j in range(w):
        near = mask[b, max(i - width, 0) : i + width + 1, max(j - width, 0) : j + width + 1]
        ring[b, i, j, 0] = float(mask[b, i, j, 0] == 0 and near.max() > 0)
  return ring


@pytest.mark.parametrize("width", [0, 1, 2])
def test_ring_around_the_hole_matches_numpy(width):
  mask = (np.random.default_rng(3).random((2, 9, 9, 1)) < 0.1).astype(np.float32)
  mask[1] = 0
  mask[1, 0, 8] = 1  # a corner pixel: the ring stops at the border
  got = np.asarray(masks.ring_around(jnp.asarray(mask), width))
  np.testing.assert_array_equal(got, _ring64(mask, width))
  assert width == 0 or got[1].sum() == (width + 1) ** 2 - 1


def test_context_encoder_l2_matches_numpy_on_the_papers_scale(pair):
  """Squared error of images in [-1, 1] over the hole (weight 1) and the ring (weight 10),
  averaged over their elements; pixels outside both count for nothing."""
  pred, target = pair
  hole = (np.random.default_rng(1).random((3, 8, 8, 1)) < 0.2).astype(np.float64)
  ring = _ring64(hole, 1)
  squared = ((2 * pred - 1) - (2 * target - 1)) ** 2
  expected = np.sum(squared * (hole + 10 * ring)) / ((hole + ring).sum() * 3)

  def loss(pred):
    return float(
      losses.context_encoder_l2(
        jnp.asarray(pred, jnp.float32),
        jnp.asarray(target, jnp.float32),
        jnp.asarray(hole),
        jnp.asarray(ring),
        ring_weight=10.0,
      )
    )

  np.testing.assert_allclose(loss(pred), expected, rtol=1e-5)
  scribbled = np.where(hole + ring > 0, pred, 1e3 * np.random.default_rng(2).standard_normal(pred.shape))
  np.testing.assert_allclose(loss(scribbled), expected, rtol=1e-5)
  empty = jnp.zeros((1, 4, 4, 1))
  assert (
    float(losses.context_encoder_l2(jnp.ones((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3)), empty, empty, ring_weight=10.0))
    == 0
  )


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
