"""sRGB <-> CIE Lab in JAX, with the conventions of ``skimage.color.rgb2lab`` / ``lab2rgb`` defaults.

* sRGB values in [0, 1], companded as IEC 61966-2-1: ``c / 12.92`` up to 0.04045, else
  ``((c + 0.055) / 1.055) ** 2.4``.
* Linear RGB -> XYZ with scikit-image's 6-digit Rec. 709 / D65 matrix (``XYZ_FROM_RGB``).
* Reference white D65, 2 degree observer: XYZ = (0.95047, 1, 1.08883).
* ``f(t) = t ** (1/3)`` above ``(6/29) ** 3``, else the linear segment ``t / (3 (6/29)^2) + 4/29``.
  scikit-image rounds these constants (0.008856, 7.787); the exact ones change Lab by < 1e-4.
* L in [0, 100]; for sRGB colours a is within about [-86, 98] and b within [-108, 95].

Everything is elementwise over a trailing channel axis of 3, float32, and jits and vmaps.
Branches are ``jnp.where`` with the non-selected side fed a safe value, so gradients stay
finite (a ``pow`` of a negative number on the unused side would otherwise poison them).
"""

import jax
import jax.numpy as jnp
import numpy as np

# float64 NumPy, public so that host-side float64 code (jssl.losses.colorization) shares the definition.
XYZ_FROM_RGB = np.array(
  [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
  ]
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)  # inverted in float64, then cast
D65_WHITE = np.array([0.95047, 1.0, 1.08883])

# The sRGB transfer function's knee, in companded and in linear units.
_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308
# CIE Lab's f() switches from a cube root to a line at t = delta^3 (f = delta there).
_DELTA = 6.0 / 29.0


def _check_channels(x: jax.Array, name: str) -> None:
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"{name}: expected a trailing channel axis of 3, got shape {x.shape}.")


def _apply_matrix(m: np.ndarray, x: jax.Array) -> jax.Array:
  """``m @ x`` over the last axis of ``x`` [..., 3].

  Written as broadcast multiply + sum, not a matmul: a float32 matmul on TPU defaults to
  bfloat16 passes, which would cost about 1 Lab unit.
  """
  return jnp.sum(x[..., None, :] * jnp.asarray(m, jnp.float32), axis=-1)


def _srgb_to_linear(rgb: jax.Array) -> jax.Array:
  """Companded sRGB -> linear RGB, elementwise (no clipping)."""
  safe = jnp.maximum(rgb, _SRGB_KNEE)
  return jnp.where(rgb > _SRGB_KNEE, ((safe + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _linear_to_srgb(linear: jax.Array) -> jax.Array:
  """Linear RGB -> companded sRGB, elementwise (no clipping)."""
  safe = jnp.maximum(linear, _LINEAR_KNEE)
  return jnp.where(linear > _LINEAR_KNEE, 1.055 * safe ** (1 / 2.4) - 0.055, linear * 12.92)


def _lab_f(t: jax.Array) -> jax.Array:
  safe = jnp.maximum(t, _DELTA**3)
  return jnp.where(t > _DELTA**3, jnp.cbrt(safe), t / (3 * _DELTA**2) + 4 / 29)


def _lab_f_inv(t: jax.Array) -> jax.Array:
  return jnp.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4 / 29))


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB -> CIE Lab (D65, 2 degrees), as ``skimage.color.rgb2lab`` with its defaults.

  Args:
    rgb: ``[..., 3]`` sRGB in [0, 1] (values outside are converted, not clipped).

  Returns:
    ``[..., 3]`` float32 (L, a, b), L in [0, 100].
  """
  _check_channels(rgb, "rgb_to_lab")
  xyz = _apply_matrix(XYZ_FROM_RGB, _srgb_to_linear(jnp.asarray(rgb, jnp.float32)))
  fx, fy, fz = jnp.moveaxis(_lab_f(xyz / jnp.asarray(D65_WHITE, jnp.float32)), -1, 0)
  return jnp.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jax.Array) -> jax.Array:
  """CIE Lab (D65, 2 degrees) -> sRGB in [0, 1], as ``skimage.color.lab2rgb`` with its defaults.

  Out-of-gamut colours are handled as scikit-image does: a negative ``f(Z)`` is set to 0
  (it warns there), and the final sRGB is clipped to [0, 1].

  Args:
    lab: ``[..., 3]`` (L, a, b).

  Returns:
    ``[..., 3]`` float32 sRGB in [0, 1].
  """
  _check_channels(lab, "lab_to_rgb")
  lum, a, b = jnp.moveaxis(jnp.asarray(lab, jnp.float32), -1, 0)
  fy = (lum + 16) / 116
  f_xyz = jnp.stack([fy + a / 500, fy, jnp.maximum(fy - b / 200, 0.0)], axis=-1)
  xyz = _lab_f_inv(f_xyz) * jnp.asarray(D65_WHITE, jnp.float32)
  return jnp.clip(_linear_to_srgb(_apply_matrix(RGB_FROM_XYZ, xyz)), 0.0, 1.0)


def gray_image(rgb: jax.Array) -> jax.Array:
  """The image with its colour removed: its lightness L alone, as sRGB (colorization's input).

  Mathematically ``lab_to_rgb`` of (L, 0, 0), computed straight from the luminance Y
  (L is a function of Y alone) so that the three channels are *exactly* equal: scikit-image's
  matrix maps D65 white to XYZ (0.950456, 1, 1.088754), not exactly to the reference white,
  so ``lab_to_rgb((L, 0, 0))`` has channels that differ by up to ~1e-4. The Y row of the matrix
  sums to exactly 1, so the returned gray has the input's L.

  Args:
    rgb: ``[..., 3]`` sRGB in [0, 1].

  Returns:
    ``[..., 3]`` float32 sRGB in [0, 1] with equal channels.
  """
  _check_channels(rgb, "gray_image")
  luminance = _apply_matrix(XYZ_FROM_RGB[1:2], _srgb_to_linear(jnp.asarray(rgb, jnp.float32)))  # [..., 1]
  gray = jnp.clip(_linear_to_srgb(luminance), 0.0, 1.0)
  return jnp.broadcast_to(gray, luminance.shape[:-1] + (3,))
