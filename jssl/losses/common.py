"""What the SSL losses share: their compute dtype, row L2-normalisation and argument checks."""

import numbers

import jax
import jax.numpy as jnp

from jssl.errors import ConfigError

# The matmuls of the losses run at full float32 precision: on TPU (bf16 passes) and on GPU
# (TF32) the default would round the cross-correlations and logits to ~3 significant digits,
# and Barlow Twins' (1 - C_ii)^2 is a difference of numbers near 1. The matrices are small
# next to the encoder's (D x D or N x N), so the extra passes cost little.
PRECISION = jax.lax.Precision.HIGHEST


def as_float(x) -> jax.Array:
  """``x`` as a JAX array of its dtype promoted to at least float32.

  bfloat16/float16 activations become float32; float64 stays float64 when ``jax_enable_x64`` is
  on (the gradient tests run there), and NumPy float64 becomes float32 when it is off.
  """
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows (last axis) scaled to unit L2 norm, ``x / max(||x||, 1e-12)`` as torch's ``F.normalize``."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


def check_pair(name: str, a, b, *, min_rows: int = 1) -> None:
  """Raise ValueError unless ``a`` and ``b`` are ``[N, D]`` of one shape with ``N >= min_rows``."""
  if a.shape != b.shape:
    raise ValueError(f"{name}: the two inputs must have the same shape, got {a.shape} and {b.shape}.")
  if a.ndim != 2:
    raise ValueError(f"{name}: expected [N, D] inputs, got shape {a.shape}.")
  if a.shape[0] < min_rows:
    raise ValueError(f"{name}: needs a batch of at least {min_rows} rows, got N={a.shape[0]}.")


def check_positive(name: str, value) -> None:
  """Raise ConfigError if ``value`` is a Python/NumPy number <= 0 (traced values, e.g. a
  scheduled temperature inside ``jax.jit``, cannot be checked and pass through)."""
  if isinstance(value, numbers.Real) and not value > 0:
    raise ConfigError(f"{name} must be > 0, got {value}.")
