"""A random batch shaped like a real one, for benchmarks and tests that leave the input pipeline out.

Benchmark scripts import it as ``random_batch`` (their folder is on ``sys.path``); tests as
``benchmarks.random_batch`` (the repository root is, see ``pythonpath`` in pyproject.toml).
"""

import jax
import jax.numpy as jnp

from jssl import parallel, train


def random_batch(setup: train.Setup, key: jax.Array) -> dict:
  """A batch with ``train.batch_spec(setup)``'s shapes and dtypes, made on the devices and
  sharded like a real one: floats uniform in [0, 1), uint8 images in [0, 255), int32 labels
  in [0, 10)."""
  spec = train.batch_spec(setup)

  def make(rng):
    batch = {}
    for name, key in zip(sorted(spec), jax.random.split(rng, len(spec))):
      shape, dtype = spec[name].shape, spec[name].dtype
      if jnp.issubdtype(dtype, jnp.floating):
        batch[name] = jax.random.uniform(key, shape, dtype)
      else:  # uint8 images, int32 labels
        batch[name] = jax.random.randint(key, shape, 0, 255 if dtype == jnp.uint8 else 10).astype(dtype)
    return batch

  return jax.jit(make, out_shardings=parallel.batch_sharding(setup.mesh))(key)
