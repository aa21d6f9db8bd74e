"""ntxent_chunked equals ntxent in value and gradient, and its memory grows linearly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import parallel
from jssl.losses import ntxent, ntxent_chunked


def _inputs(batch, dim, seed=0):
  rng = np.random.default_rng(seed)
  return (
    jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32),
    jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32),
  )


def _value_and_grads(loss, z_a, z_b, **kwargs):
  return jax.jit(jax.value_and_grad(lambda a, b: loss(a, b, **kwargs), argnums=(0, 1)))(z_a, z_b)


@pytest.mark.parametrize(
  "batch,dim,block,temperature,devices",
  [
    (8, 4, 3, 0.5, 1),  # block does not divide 2B = 16
    (16, 32, 16, 0.1, 1),
    (16, 32, 5, 0.05, 8),  # sharded, ragged blocks, low temperature
    (32, 16, 64, 0.2, 8),  # block larger than the batch
    (24, 8, 7, 1.0, 4),
  ],
)
def test_value_and_gradient_equal_dense(batch, dim, block, temperature, devices):
  z_a, z_b = _inputs(batch, dim, seed=batch + block)
  mesh = parallel.make_mesh(jax.devices()[:devices]) if devices > 1 else None
  if mesh is not None:
    z_a, z_b = (jax.device_put(z, parallel.batch_sharding(mesh)) for z in (z_a, z_b))
  dense, dense_grads = _value_and_grads(ntxent, z_a, z_b, temperature=temperature)
  chunked, chunked_grads = _value_and_grads(
    ntxent_chunked, z_a, z_b, temperature=temperature, block_size=block, mesh=mesh
  )
  # float32, different summation order: round-off only.
  np.testing.assert_allclose(chunked, dense, rtol=2e-6, atol=2e-6)
  for got, want in zip(chunked_grads, dense_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_rejects_bad_arguments():
  z_a, z_b = _inputs(12, 4)
  with pytest.raises(ValueError, match="block_size"):
    ntxent_chunked(z_a, z_b, block_size=0)
  with pytest.raises(ValueError, match="divisible"):
    ntxent_chunked(z_a, z_b, mesh=parallel.make_mesh(jax.devices()[:8]))
  with pytest.raises(ValueError, match="same shape"):
    ntxent_chunked(z_a, z_b[:, :3])


def _temp_bytes(loss, batch, **kwargs):
  """Per-device temporary memory of the compiled loss-and-gradient on 8 devices (not run)."""
  mesh = parallel.make_mesh(jax.devices())
  spec = jax.ShapeDtypeStruct((batch, 128), jnp.float32, sharding=parallel.batch_sharding(mesh))
  fn = jax.jit(jax.grad(lambda a, b: loss(a, b, temperature=0.1, **kwargs), argnums=(0, 1)))
  return fn.lower(spec, spec).compile().memory_analysis().temp_size_in_bytes


def test_chunked_memory_grows_linearly_dense_quadratically():
  mesh = parallel.make_mesh(jax.devices())
  small, large = 2048, 4096
  chunked = [_temp_bytes(ntxent_chunked, b, block_size=256, mesh=mesh) for b in (small, large)]
  dense = [_temp_bytes(ntxent, b) for b in (small, large)]
  # Doubling the batch: linear memory doubles (ratio ~2), quadratic memory quadruples (~4).
  assert chunked[1] / chunked[0] < 2.6, chunked
  assert dense[1] / dense[0] > 3.2, dense
  assert chunked[1] < dense[1] / 4, (chunked, dense)
