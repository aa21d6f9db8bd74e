"""The CPU convolution's kernel gradient (jssl.models.conv) against float64 NumPy and lax."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jssl.models import conv as conv_lib

NHWC = ("NHWC", "HWIO", "NHWC")


def numpy_kernel_gradient(x, dy, kernel_shape, strides, padding):
  """dL/dW[i, j, c, o] = sum_{n, h, w} x_pad[n, h*sh + i, w*sw + j, c] * dy[n, h, w, o], in float64."""
  kh, kw, cin, cout = kernel_shape
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  x = np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
  dy = np.asarray(dy, np.float64)
  _, ho, wo, _ = dy.shape
  grad = np.zeros(kernel_shape)
  for i, j, h, w in itertools.product(range(kh), range(kw), range(ho), range(wo)):
    grad[i, j] += x[:, h * sh + i, w * sw + j, :].T @ dy[:, h, w, :]
  return grad


CASES = [  # (input H, W), kernel (kh, kw), strides, padding
  ((8, 8), (3, 3), (1, 1), ((1, 1), (1, 1))),
  ((8, 8), (3, 3), (2, 2), ((1, 1), (1, 1))),
  ((9, 7), (3, 3), (2, 2), ((1, 1), (1, 1))),  # odd sizes: the last row/column is unused
  ((8, 8), (1, 1), (2, 2), ((0, 0), (0, 0))),  # ResNet downsample
  ((12, 12), (7, 7), (2, 2), ((3, 3), (3, 3))),  # ImageNet stem
  ((6, 10), (3, 5), (1, 2), ((0, 2), (1, 3))),  # asymmetric everything
]


@pytest.mark.parametrize("chunk_bytes", [0, 1, 2 * 12 * 12 * 4 * 4], ids=["whole", "per_image", "two_images"])
@pytest.mark.parametrize("size,kernel,strides,padding", CASES)
def test_kernel_gradient_matches_float64_numpy(size, kernel, strides, padding, chunk_bytes):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, *size, 4)).astype(np.float32)
  w = rng.normal(size=(*kernel, 4, 5)).astype(np.float32)
  y = lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  dy = rng.normal(size=y.shape).astype(np.float32)
  got = conv_lib.kernel_gradient(jnp.asarray(x), jnp.asarray(dy), w.shape, strides, padding, chunk_bytes=chunk_bytes)
  np.testing.assert_allclose(got, numpy_kernel_gradient(x, dy, w.shape, strides, padding), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 1), (1, 1))])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_gradients_equal_lax(monkeypatch, padding, strides):
  monkeypatch.setenv("JSSL_CONV_WEIGHT_GRAD", "taps")
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 6))

  def loss(conv, x, w):
    y = conv(x, w, strides, padding, dimension_numbers=NHWC)
    return jnp.sum(jnp.sin(y))  # a non-linear loss, so dy varies by position

  ours = jax.jit(jax.value_and_grad(lambda x, w: loss(conv_lib.conv_general_dilated, x, w), argnums=(0, 1)))(x, w)
  ref = jax.value_and_grad(lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1))(x, w)
  np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5)
  for got, want in zip(ours[1], ref[1]):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_unsupported_convolutions_fall_back_to_lax(monkeypatch):
  monkeypatch.setenv("JSSL_CONV_WEIGHT_GRAD", "taps")
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  w = jax.random.normal(jax.random.key(1), (3, 3, 2, 4))
  kwargs = dict(dimension_numbers=NHWC, feature_group_count=2, rhs_dilation=(2, 2))
  grad = jax.grad(lambda w: conv_lib.conv_general_dilated(x, w, (1, 1), "SAME", **kwargs).sum())(w)
  want = jax.grad(lambda w: lax.conv_general_dilated(x, w, (1, 1), "SAME", **kwargs).sum())(w)
  np.testing.assert_allclose(grad, want, rtol=1e-5)


def test_switch_rejects_unknown_values(monkeypatch):
  monkeypatch.setenv("JSSL_CONV_WEIGHT_GRAD", "fast")
  x, w = jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1))
  with pytest.raises(ValueError, match="JSSL_CONV_WEIGHT_GRAD"):
    conv_lib.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
