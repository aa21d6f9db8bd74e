"""NT-Xent against an independent float64 NumPy reference, and its invariances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.losses import ntxent


def reference_ntxent(z_a, z_b, temperature):
  """Straight from the paper's definition, in float64, one anchor at a time."""
  z = np.concatenate([z_a, z_b]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n, batch = len(z), len(z_a)
  losses = []
  for i in range(n):
    positive = (i + batch) % n
    sims = np.array([z[i] @ z[k] / temperature for k in range(n) if k != i])
    pos = z[i] @ z[positive] / temperature
    losses.append(-(pos - np.log(np.sum(np.exp(sims)))))
  return np.mean(losses)


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 1.0), (8, 16, 0.5), (16, 128, 0.1), (5, 7, 0.05)])
def test_matches_float64_reference(batch, dim, temperature):
  rng = np.random.default_rng(batch * dim)
  z_a, z_b = rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))
  got = float(ntxent(jnp.asarray(z_a, jnp.float32), jnp.asarray(z_b, jnp.float32), temperature=temperature))
  # float32 logits of magnitude <= 1/tau = 20: relative error ~1e-6 of the logits.
  np.testing.assert_allclose(got, reference_ntxent(z_a, z_b, temperature), rtol=1e-5, atol=1e-5)


def test_symmetric_in_views_and_invariant_to_scale():
  rng = np.random.default_rng(0)
  z_a, z_b = jnp.asarray(rng.normal(size=(12, 32)), jnp.float32), jnp.asarray(rng.normal(size=(12, 32)), jnp.float32)
  loss = ntxent(z_a, z_b, temperature=0.2)
  np.testing.assert_allclose(ntxent(z_b, z_a, temperature=0.2), loss, rtol=1e-6)
  np.testing.assert_allclose(ntxent(3.7 * z_a, 0.01 * z_b, temperature=0.2), loss, rtol=1e-5)


def test_known_value_for_orthogonal_pairs():
  # Positives at cosine 1, all 2B-2 negatives at cosine 0: -log(e^(1/t) / (e^(1/t) + 2B - 2)).
  batch, t = 4, 0.5
  expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + 2 * batch - 2))
  np.testing.assert_allclose(ntxent(jnp.eye(batch), jnp.eye(batch), temperature=t), expected, rtol=1e-6)


def test_finite_at_low_temperature_with_identical_vectors():
  z = jnp.ones((6, 8))
  loss, grad = jax.value_and_grad(lambda a: ntxent(a, z, temperature=0.05))(z)
  assert np.isfinite(loss) and np.all(np.isfinite(grad))
  # All 2B-1 candidates are equally similar: the loss is log(2B - 1).
  np.testing.assert_allclose(loss, np.log(11), rtol=1e-5)


def test_lower_for_matching_views_than_for_random_ones():
  rng = np.random.default_rng(1)
  z = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
  noise = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
  assert ntxent(z, z + 0.01 * noise, temperature=0.1) < ntxent(z, noise, temperature=0.1)


@pytest.mark.parametrize("shapes", [((4, 8), (4, 9)), ((4, 8), (5, 8)), ((8,), (8,)), ((1, 8), (1, 8))])
def test_rejects_bad_shapes(shapes):
  with pytest.raises(ValueError):
    ntxent(jnp.zeros(shapes[0]), jnp.zeros(shapes[1]), temperature=0.1)


def test_rejects_non_positive_temperature():
  with pytest.raises(ValueError, match="temperature"):
    ntxent(jnp.eye(3), jnp.eye(3), temperature=0.0)
