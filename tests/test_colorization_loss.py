"""Colorization losses against independent float64 NumPy references, and the ab gamut against scikit-image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color as skcolor

from jssl.losses.colorization import (
  ab_bins,
  ab_histogram,
  ab_l2_loss,
  annealed_mean,
  classification_loss,
  nearest_bins,
  rebalancing_weights,
  soft_encode,
)

BINS = ab_bins()
Q = len(BINS)


def random_ab(seed, shape):
  """ab of random sRGB colours (skimage), so targets are realistic: mostly near gray, some saturated."""
  rgb = np.random.default_rng(seed).uniform(size=shape + (3,))
  return skcolor.rgb2lab(rgb)[..., 1:]


def reference_soft_encode(ab, bins, neighbours, sigma):
  ab, bins = ab.reshape(-1, 2).astype(np.float64), bins.astype(np.float64)
  out = np.zeros((len(ab), len(bins)))
  for i, point in enumerate(ab):
    dist = np.linalg.norm(bins - point, axis=1)
    nearest = np.argsort(dist, kind="stable")[:neighbours]
    weight = np.exp(-(dist[nearest] ** 2) / (2 * sigma**2))
    out[i, nearest] = weight / weight.sum()
  return out


def reference_smoothed_prior(prior, bins, sigma):
  """Each bin's mass spread over all bins by a normalised Gaussian, one source bin at a time."""
  prior, bins = prior / prior.sum(), bins.astype(np.float64)
  smoothed = np.zeros(len(bins))
  for r in range(len(bins)):
    spread = np.exp(-np.sum((bins - bins[r]) ** 2, axis=1) / (2 * sigma**2))
    smoothed += prior[r] * spread / spread.sum()
  return smoothed


def reference_rebalancing(prior, bins, lam, sigma):
  smoothed = reference_smoothed_prior(prior, bins, sigma)
  weights = 1 / ((1 - lam) * smoothed + lam / len(bins))
  return weights / np.sum(smoothed * weights)


def reference_classification_loss(logits, target_ab, bins, weights, neighbours, sigma):
  z = reference_soft_encode(target_ab, bins, neighbours, sigma)
  logits = logits.reshape(-1, len(bins)).astype(np.float64)
  log_probs = logits - logits.max(1, keepdims=True)
  log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
  return np.mean(weights[np.argmax(z, axis=1)] * -np.sum(z * log_probs, axis=1))


def random_prior(seed):
  prior = np.random.default_rng(seed).gamma(0.3, size=Q)
  return prior / prior.sum()


# ----- ab_bins -----


def skimage_bins(rgb, grid=10):
  return {tuple(cell) for cell in np.round(skcolor.rgb2lab(rgb)[..., 1:].reshape(-1, 2) / grid).astype(int)}


def test_bins_are_exactly_the_cells_of_the_8bit_cube_surface_per_skimage():
  levels = np.linspace(0, 1, 256)
  u, v = (m.ravel() for m in np.meshgrid(levels, levels, indexing="ij"))
  faces = [np.stack(np.roll([np.full_like(u, s), u, v], k, axis=0), -1) for k in range(3) for s in (0.0, 1.0)]
  assert skimage_bins(np.concatenate(faces)) == {tuple(cell) for cell in np.round(BINS / 10).astype(int)}


def test_random_8bit_colours_fall_in_the_bins():
  rgb = np.random.default_rng(0).integers(0, 256, size=(200_000, 3)) / 255.0
  assert skimage_bins(rgb) <= {tuple(cell) for cell in np.round(BINS / 10).astype(int)}


def test_bins_count_grid_and_gray():
  assert BINS.shape == (261, 2) and BINS.dtype == np.float32
  np.testing.assert_array_equal(BINS % 10, 0)
  assert len({tuple(b) for b in BINS}) == Q
  assert [0.0, 0.0] in BINS.tolist()
  assert len(ab_bins(20)) < Q < len(ab_bins(5))


def test_bins_are_a_fresh_copy():
  bins = ab_bins()
  bins[:] = 0
  np.testing.assert_array_equal(ab_bins(), BINS)


# ----- soft_encode -----


@pytest.mark.parametrize("neighbours,sigma", [(5, 5.0), (1, 5.0), (8, 10.0)])
def test_soft_encode_matches_reference(neighbours, sigma):
  ab = random_ab(1, (4, 10))
  got = np.asarray(soft_encode(jnp.asarray(ab, jnp.float32), BINS, neighbours=neighbours, sigma=sigma))
  assert got.shape == (4, 10, Q)
  np.testing.assert_allclose(got.reshape(-1, Q), reference_soft_encode(ab, BINS, neighbours, sigma), atol=1e-5)


def test_soft_encode_is_a_distribution_peaked_at_the_nearest_bin():
  ab = np.concatenate([random_ab(2, (300,)), np.random.default_rng(2).uniform(-110, 110, size=(100, 2))])
  z = np.asarray(soft_encode(ab, BINS))
  np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(np.count_nonzero(z, axis=-1), 5)
  nearest = np.argmin(np.linalg.norm(ab[:, None, :] - BINS[None].astype(np.float64), axis=-1), axis=1)
  np.testing.assert_array_equal(np.argmax(z, axis=-1), nearest)


def test_soft_encode_on_a_bin_centre():
  # 4 neighbours at distance 10 (weight e^-2 each, against 1 at the centre) when all are in the gamut.
  z = np.asarray(soft_encode(np.array([[0.0, 0.0]]), BINS))[0]
  np.testing.assert_allclose(z[BINS.tolist().index([0.0, 0.0])], 1 / (1 + 4 * np.exp(-2)), rtol=1e-6)


# ----- rebalancing_weights -----


@pytest.mark.parametrize("lam,sigma", [(0.5, 5.0), (0.1, 5.0), (0.9, 10.0)])
def test_rebalancing_matches_reference(lam, sigma):
  prior = random_prior(3)
  np.testing.assert_allclose(
    rebalancing_weights(prior, BINS, lam=lam, sigma=sigma), reference_rebalancing(prior, BINS, lam, sigma), rtol=1e-5
  )


def test_rebalancing_is_normalised_and_favours_rare_bins():
  prior = random_prior(4)
  weights = np.asarray(rebalancing_weights(prior, BINS), np.float64)
  smoothed = reference_smoothed_prior(prior, BINS, 5.0)
  np.testing.assert_allclose(np.sum(smoothed * weights), 1.0, rtol=1e-5)
  order = np.argsort(smoothed)  # rarest first
  assert np.all(np.diff(weights[order]) <= 1e-6)
  assert weights[order[0]] > 1.5 * weights[order[-1]]


def test_rebalancing_with_lambda_one_is_uniform():
  np.testing.assert_allclose(rebalancing_weights(random_prior(5), BINS, lam=1.0), 1.0, rtol=1e-5)


# ----- classification_loss -----


@pytest.mark.parametrize("rebalance", [False, True])
def test_classification_loss_matches_reference(rebalance):
  rng = np.random.default_rng(6)
  target = random_ab(6, (3, 8))
  logits = rng.normal(scale=3.0, size=(3, 8, Q))
  weights = np.asarray(rebalancing_weights(random_prior(6), BINS)) if rebalance else np.ones(Q, np.float32)
  got = classification_loss(
    jnp.asarray(logits, jnp.float32), jnp.asarray(target, jnp.float32), BINS, jnp.asarray(weights)
  )
  expected = reference_classification_loss(logits, target, BINS, weights.astype(np.float64), 5, 5.0)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_classification_loss_gradient_is_weighted_softmax_minus_target():
  target = random_ab(7, (16,))
  logits = np.random.default_rng(7).normal(size=(16, Q))
  weights = np.asarray(rebalancing_weights(random_prior(7), BINS))
  grad = jax.jit(jax.grad(classification_loss))(jnp.asarray(logits, jnp.float32), target, BINS, weights)
  z = reference_soft_encode(target, BINS, 5, 5.0)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  expected = weights[np.argmax(z, 1), None] * (probs - z) / len(target)
  np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_classification_loss_is_lower_for_logits_on_the_target_bins():
  target = random_ab(8, (64,))
  weights = jnp.ones(Q)
  on_target = 10.0 * soft_encode(target, BINS)
  shuffled = on_target[np.random.default_rng(8).permutation(64)]
  assert classification_loss(on_target, target, BINS, weights) < classification_loss(shuffled, target, BINS, weights)
  assert classification_loss(on_target, target, BINS, weights) < classification_loss(
    jnp.zeros((64, Q)), target, BINS, weights
  )


def test_classification_loss_jits_and_rejects_bad_shapes():
  target = random_ab(9, (2, 4))
  logits = jnp.zeros((2, 4, Q))
  np.testing.assert_allclose(jax.jit(classification_loss)(logits, target, BINS, jnp.ones(Q)), np.log(Q), rtol=1e-6)
  with pytest.raises(ValueError, match="logits"):
    classification_loss(jnp.zeros((2, 4, Q - 1)), target, BINS, jnp.ones(Q))
  with pytest.raises(ValueError, match="weights"):
    classification_loss(logits, target, BINS, jnp.ones(Q + 1))


# ----- annealed_mean, ab_histogram, ab_l2_loss -----


@pytest.mark.parametrize("temperature", [0.38, 1.0])
def test_annealed_mean_matches_reference(temperature):
  logits = np.random.default_rng(10).normal(scale=2.0, size=(5, 3, Q))
  scaled = logits / temperature
  probs = np.exp(scaled - scaled.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  np.testing.assert_allclose(
    annealed_mean(logits, BINS, temperature=temperature), probs @ BINS.astype(np.float64), atol=1e-4
  )


def test_annealed_mean_of_a_peaked_logit_is_that_bin():
  picks = np.array([0, 17, Q // 2, Q - 1])
  logits = 50.0 * np.eye(Q)[picks]
  np.testing.assert_allclose(jax.jit(annealed_mean)(logits, BINS), BINS[picks], atol=1e-3)


def test_ab_histogram_matches_reference():
  ab = random_ab(11, (8, 16))
  nearest = [np.argmin(np.linalg.norm(BINS.astype(np.float64) - point, axis=1)) for point in ab.reshape(-1, 2)]
  expected = np.bincount(nearest, minlength=Q) / len(nearest)
  got = np.asarray(jax.jit(ab_histogram)(ab, BINS))
  np.testing.assert_allclose(got, expected, atol=1e-7)
  np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-6)


def test_ab_l2_loss_matches_reference():
  rng = np.random.default_rng(12)
  pred, target = rng.normal(size=(2, 4, 4, 2)), rng.normal(size=(2, 4, 4, 2))
  np.testing.assert_allclose(ab_l2_loss(pred, target), np.mean((pred - target) ** 2), rtol=1e-5)
  assert float(ab_l2_loss(pred, pred)) == 0.0
  with pytest.raises(ValueError):
    ab_l2_loss(pred, target[..., :1])


def test_precomputed_nearest_bins_give_the_same_loss_and_histogram():
  """The task computes the nearest bins once for both the loss and the running prior."""
  bins = jnp.asarray(ab_bins(10))
  rng = np.random.default_rng(7)
  ab = jnp.asarray(rng.uniform(-60, 60, (2, 5, 5, 2)), jnp.float32)
  logits = jnp.asarray(rng.normal(size=(2, 5, 5, len(bins))), jnp.float32)
  weights = jnp.asarray(rng.uniform(0.5, 2.0, len(bins)), jnp.float32)
  nearest = nearest_bins(ab, bins, neighbours=5, sigma=5.0)
  np.testing.assert_allclose(
    classification_loss(logits, ab, bins, weights, nearest=nearest),
    classification_loss(logits, ab, bins, weights),
    rtol=1e-6,
  )
  np.testing.assert_array_equal(ab_histogram(ab, bins, nearest=nearest), ab_histogram(ab, bins))
