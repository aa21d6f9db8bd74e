"""Per-image quality metrics in JAX: PSNR (also over a mask), SSIM and Hasler & Suesstrunk colourfulness.

Images are ``[N, H, W, C]`` with values in [0, max_value]; every metric returns ``[N]``
float32, one value per image, and jits (all shapes are static). SSIM matches scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=max_value, channel_axis=-1)``, the setting of Wang et al. (2004).
"""

import jax
import jax.numpy as jnp
import numpy as np

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # scikit-image's truncation with gaussian_weights=True
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _check_images(pred, target, name: str) -> None:
  if pred.shape != target.shape:
    raise ValueError(f"{name}: pred and target must have the same shape, got {pred.shape} and {target.shape}.")
  if pred.ndim != 4:
    raise ValueError(f"{name}: expected [N, H, W, C] images, got shape {pred.shape}.")


def psnr(pred: jax.Array, target: jax.Array, *, max_value: float = 1.0) -> jax.Array:
  """Peak signal-to-noise ratio per image, ``10 log10(max_value^2 / MSE)`` in dB.

  Args:
    pred: ``[N, H, W, C]`` images in [0, max_value].
    target: ``[N, H, W, C]`` reference images.
    max_value: the range of the pixel values (scikit-image's ``data_range``).

  Returns:
    ``[N]`` float32 PSNR, MSE taken over H, W and C; ``inf`` for identical images.
  """
  _check_images(pred, target, "psnr")
  diff = jnp.asarray(pred, jnp.float32) - jnp.asarray(target, jnp.float32)
  mse = jnp.mean(jnp.square(diff), axis=(1, 2, 3))
  return 10 * jnp.log10(max_value**2 / mse)


def masked_psnr(prediction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """PSNR per image ``[N]`` over the masked pixels only (images in [0, 1], mask ``[N, S, S, 1]``)."""
  squared = jnp.sum(jnp.square(prediction - target) * mask, axis=(1, 2, 3))
  mse = squared / jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)) * target.shape[-1], 1.0)
  return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def _gaussian_taps() -> np.ndarray:
  """The normalised 1-D SSIM window (11 taps for sigma 1.5), as scipy.ndimage builds it."""
  radius = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
  return taps / taps.sum()


def _valid_filter(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
  """Correlate ``x`` with ``taps`` along ``axis``, keeping only the 'valid' positions.

  A sum of shifted slices, not a convolution or matmul: it is exact float32 arithmetic on
  every backend (TPU convolutions/matmuls default to bfloat16 passes) and the window is small.
  """
  out_len = x.shape[axis] - len(taps) + 1
  return sum(float(w) * jax.lax.slice_in_dim(x, k, k + out_len, axis=axis) for k, w in enumerate(taps))


def ssim(pred: jax.Array, target: jax.Array, *, max_value: float = 1.0) -> jax.Array:
  """Mean structural similarity per image, with an 11x11 Gaussian window (sigma 1.5).

  Local means, population variances and covariance are Gaussian-weighted; only window
  positions that lie wholly inside the image count (scikit-image computes the map with
  reflect padding, then crops half a window from each border: the same positions). The
  per-image value is the mean of the SSIM map over channels and positions.

  Args:
    pred: ``[N, H, W, C]`` images in [0, max_value], H and W >= 11.
    target: ``[N, H, W, C]`` reference images.
    max_value: the range of the pixel values; sets C1 = (0.01 max)^2 and C2 = (0.03 max)^2.

  Returns:
    ``[N]`` float32 SSIM, 1 for identical images.

  Raises:
    ValueError: on shape mismatch, rank other than 4 or images smaller than the window.
  """
  _check_images(pred, target, "ssim")
  taps = _gaussian_taps()
  if min(pred.shape[1:3]) < len(taps):
    raise ValueError(
      f"ssim: images must be at least {len(taps)}x{len(taps)} (the Gaussian window), got "
      f"{pred.shape[1]}x{pred.shape[2]}."
    )
  x, y = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
  # All five local moments in one filtering pass: [5, N, H, W, C] -> [5, N, H', W', C].
  moments = _valid_filter(_valid_filter(jnp.stack([x, y, x * x, y * y, x * y]), taps, 2), taps, 3)
  mu_x, mu_y, m_xx, m_yy, m_xy = moments
  var_x, var_y, cov_xy = m_xx - mu_x * mu_x, m_yy - mu_y * mu_y, m_xy - mu_x * mu_y
  c1, c2 = (_SSIM_K1 * max_value) ** 2, (_SSIM_K2 * max_value) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
  return jnp.mean(ssim_map, axis=(1, 2, 3))


def colourfulness(rgb: jax.Array) -> jax.Array:
  """Hasler & Suesstrunk (2003) colourfulness per image, on the paper's 0-255 scale.

  With rg = R - G and yb = (R + G) / 2 - B over all pixels of an image:
  ``sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` (population std). Gray
  images score 0; the paper calls ~33 "moderately" and ~59 "quite" colourful.

  Args:
    rgb: ``[N, H, W, 3]`` sRGB in [0, 1].

  Returns:
    ``[N]`` float32 colourfulness.
  """
  if rgb.ndim != 4 or rgb.shape[-1] != 3:
    raise ValueError(f"colourfulness: expected [N, H, W, 3] images, got shape {rgb.shape}.")
  r, g, b = jnp.moveaxis(255.0 * jnp.asarray(rgb, jnp.float32), -1, 0)
  rg, yb = r - g, 0.5 * (r + g) - b
  mean_rg, mean_yb = jnp.mean(rg, axis=(1, 2)), jnp.mean(yb, axis=(1, 2))
  # Variance as the mean squared deviation, not E[x^2] - E[x]^2, which cancels badly in float32.
  var_rg = jnp.mean(jnp.square(rg - mean_rg[:, None, None]), axis=(1, 2))
  var_yb = jnp.mean(jnp.square(yb - mean_yb[:, None, None]), axis=(1, 2))
  return jnp.sqrt(var_rg + var_yb) + 0.3 * jnp.sqrt(mean_rg**2 + mean_yb**2)
