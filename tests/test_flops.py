"""FLOP counting for MFU: the jaxpr count against hand counts, and against XLA's."""

import jax
import jax.numpy as jnp
from jax import lax

from jssl import flops


def _conv(x, w, strides=(1, 1)):
  return lax.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_convolution_and_matmul_counts_by_hand():
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  # Each of the 2*8*8*4 outputs is a dot of 3*3*3 products: 2 FLOPs (multiply, add) each.
  assert flops.jaxpr_flops(jax.make_jaxpr(_conv)(x, w)) == 2 * (2 * 8 * 8 * 4) * (3 * 3 * 3)
  assert flops.jaxpr_flops(jax.make_jaxpr(lambda x, w: _conv(x, w, (2, 2)))(x, w)) == 2 * (2 * 4 * 4 * 4) * 27
  a, b = jnp.ones((5, 7)), jnp.ones((7, 6))
  assert flops.jaxpr_flops(jax.make_jaxpr(jnp.matmul)(a, b)) == 2 * 5 * 6 * 7
  batched = jax.make_jaxpr(lambda a, b: jnp.einsum("bij,bjk->bik", a, b))(jnp.ones((3, 5, 7)), jnp.ones((3, 7, 6)))
  assert flops.jaxpr_flops(batched) == 3 * 2 * 5 * 6 * 7


def test_nested_calls_and_loops_are_counted():
  a = jnp.ones((4, 4))

  def body(carry, _):
    return jax.jit(jnp.matmul)(carry, a), None

  scanned = jax.make_jaxpr(lambda c: jax.lax.scan(body, c, None, length=5)[0])(a)
  assert flops.jaxpr_flops(scanned) == 5 * 2 * 4 * 4 * 4
  branches = jax.make_jaxpr(lambda p, c: jax.lax.cond(p, lambda c: c @ c @ c, lambda c: c, c))(True, a)
  assert flops.jaxpr_flops(branches) == 2 * (2 * 4 * 4 * 4), "the costlier branch"


def test_count_agrees_with_xla_cost_analysis():
  x, w = jnp.ones((4, 16, 16, 8)), jnp.ones((3, 3, 8, 16))
  counted = flops.jaxpr_flops(jax.make_jaxpr(_conv)(x, w))
  xla = flops.compiled_flops(jax.jit(_conv).lower(x, w).compile())
  assert abs(xla - counted) / counted < 0.1, (xla, counted)


def test_peak_matmul_flops_is_a_plausible_rate():
  peak = flops.peak_matmul_flops(256, "float32", repeats=3)
  assert 1e8 < peak < 1e15
