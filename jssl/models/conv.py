"""A 2-D convolution whose weight gradient runs as matrix products on CPU.

XLA:CPU lowers the gradient of a convolution with respect to its kernel to another
convolution whose "kernel" is the output gradient (``[N, Ho, Wo, Cout]``, as large as
the image) and whose output is the tiny ``[kh, kw, Cin, Cout]`` kernel. Eigen's spatial
convolution handles that shape badly: measured on a 2-core EPYC, the kernel gradient of
a 64->64 3x3 convolution over 128 images of 32x32 runs at ~4 GFLOP/s, against ~45 for
the forward pass, and it was about half of a ResNet-18 train step (benchmarks/README.md).

Here the kernel gradient is written as one matrix product per kernel tap,
``dW[i, j] = shift_ij(x)^T @ dy`` with ``[N*Ho*Wo, Cin]^T @ [N*Ho*Wo, Cout]``, which XLA
sends to its GEMM. The forward pass and the input gradient stay XLA's own.

``conv_general_dilated`` has ``lax.conv_general_dilated``'s signature so it can be given
to ``flax.linen.Conv(conv_general_dilated=...)``. It takes the matrix-product path only
where it applies and helps: default backend CPU, NHWC/HWIO layouts, no dilation, no
feature groups; everything else goes to ``lax.conv_general_dilated`` unchanged.
``JSSL_CONV_WEIGHT_GRAD=xla`` turns the path off (for measuring it); ``=taps`` forces it
on any backend.
"""

import functools
import os

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
_CHUNK_BYTES = 1 << 20  # input bytes per chunk of the kernel gradient (see kernel_gradient)


def _use_taps() -> bool:
  choice = os.environ.get("JSSL_CONV_WEIGHT_GRAD", "auto")
  if choice not in ("auto", "xla", "taps"):
    raise ValueError(f"JSSL_CONV_WEIGHT_GRAD={choice!r}: expected auto, xla or taps.")
  # Accelerators' convolution libraries compute kernel gradients well; only XLA:CPU needs help.
  return choice == "taps" or (choice == "auto" and jax.default_backend() == "cpu")


def _is_nhwc(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return tuple(dimension_numbers) == ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
  return tuple(dimension_numbers) == _NHWC


def conv_general_dilated(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  batch_group_count=1,
  precision=None,
  preferred_element_type=None,
):
  """``lax.conv_general_dilated``, with the CPU kernel gradient described in the module doc."""
  plain = (
    lhs.ndim == 4
    and _is_nhwc(dimension_numbers)
    and feature_group_count == 1
    and batch_group_count == 1
    and precision is None
    and preferred_element_type is None
    and all(d == 1 for d in (lhs_dilation or (1, 1)))
    and all(d == 1 for d in (rhs_dilation or (1, 1)))
  )
  if not (plain and _use_taps()):
    return lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count,
      precision=precision,
      preferred_element_type=preferred_element_type,
    )
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  return conv2d(lhs, rhs, tuple(window_strides), tuple(tuple(p) for p in padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x, kernel, strides, padding):
  """NHWC convolution: ``x [N, H, W, Cin]``, ``kernel [kh, kw, Cin, Cout]``,
  ``strides (sh, sw)``, ``padding ((top, bottom), (left, right))`` -> ``[N, Ho, Wo, Cout]``."""
  return _xla_conv2d(x, kernel, strides, padding)


def _xla_conv2d(x, kernel, strides, padding):
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _conv2d_fwd(x, kernel, strides, padding):
  return conv2d(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, dy):
  x, kernel = residuals
  # The input gradient is XLA's transposed convolution, which runs at forward-pass speed.
  to_input = jax.linear_transpose(lambda v: _xla_conv2d(v, kernel, strides, padding), x)
  (dx,) = to_input(dy)
  # Chunks are a loop, and a loop over a batch split across devices would need a collective
  # in every iteration (8 forced CPU devices on 2 cores timed out in XLA's rendezvous), so
  # only a lone device chunks.
  chunk_bytes = _CHUNK_BYTES if jax.device_count() == 1 else 0
  return dx, kernel_gradient(x, dy, kernel.shape, strides, padding, chunk_bytes=chunk_bytes).astype(kernel.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def kernel_gradient(x, dy, kernel_shape, strides, padding, *, chunk_bytes: int = 0):
  """``dL/dkernel [kh, kw, Cin, Cout]`` from ``x [N, H, W, Cin]`` and ``dy [N, Ho, Wo, Cout]``,
  one ``[Cin, n*Ho*Wo] @ [n*Ho*Wo, Cout]`` product per tap (i, j) and chunk of n images.

  The shifted inputs each tap needs are copies; made for a few images at a time (about
  ``chunk_bytes`` of input; 0: the whole batch at once) they stay in cache for their
  product, which measured 1.5-2x faster than whole-batch copies on a 2-core EPYC.
  Chunk k holds images k, k + P, ... (P chunks).
  """
  n = x.shape[0]
  per_image = x[0].size * x.dtype.itemsize
  chunks = (
    1
    if chunk_bytes <= 0
    else next(p for p in range(1, n + 1) if (n % p == 0 and (n // p) * per_image <= chunk_bytes) or p == n)
  )
  if chunks == 1:
    return _kernel_gradient(x, dy, kernel_shape, strides, padding)
  x = x.reshape(n // chunks, chunks, *x.shape[1:])
  dy = dy.reshape(n // chunks, chunks, *dy.shape[1:])

  def add_chunk(total, k):
    x_k, dy_k = (lax.dynamic_index_in_dim(a, k, axis=1, keepdims=False) for a in (x, dy))
    return total + _kernel_gradient(x_k, dy_k, kernel_shape, strides, padding), None

  total = jnp.zeros(kernel_shape, jnp.promote_types(x.dtype, jnp.float32))
  return lax.scan(add_chunk, total, jnp.arange(chunks))[0]


def _kernel_gradient(x, dy, kernel_shape, strides, padding):
  kh, kw, cin, cout = kernel_shape
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  n, ho, wo, _ = dy.shape
  x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  dy = dy.reshape(n * ho * wo, cout)
  taps = []
  for i in range(kh):
    for j in range(kw):
      # The input pixels that tap (i, j) saw for every output pixel, in output order.
      seen = lax.slice(x, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, cin), (1, sh, sw, 1))
      taps.append(seen.reshape(n * ho * wo, cin).T @ dy)
  return jnp.stack(taps).reshape(kh, kw, cin, cout)
