"""Colorization losses of Zhang, Isola & Efros (2016), "Colorful Image Colorization".

The network sees L and predicts the ab channels of CIE Lab (``jssl.ops.color``), either

* directly, trained with ``ab_l2_loss`` (a regression baseline that averages towards
  gray), or
* as a distribution over Q quantised ab bins (``ab_bins``): each pixel's target ab is
  ``soft_encode``d over its nearest bins, ``classification_loss`` is a cross-entropy
  weighted by ``rebalancing_weights`` (rare, saturated colours count more), and
  ``annealed_mean`` decodes logits back to one ab per pixel.

All ab values, bin centres and ``sigma`` are in ab units (roughly [-110, 110]). Everything
takes any leading pixel shape ``[...]`` and jits; the functions are float32 throughout.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jssl.ops.color import D65_WHITE, XYZ_FROM_RGB

# 8-bit levels per edge of the sRGB cube when sampling its surface for the gamut.
_GAMUT_LEVELS = 256


def ab_l2_loss(pred_ab: jax.Array, target_ab: jax.Array) -> jax.Array:
  """Mean squared error over all elements, in whatever (consistent) units the caller uses.

  Args:
    pred_ab: ``[..., 2]`` predicted ab (the colorization task passes ab / 110).
    target_ab: ``[..., 2]`` target ab, same shape and units.

  Returns:
    Scalar float32 ``mean((pred - target)^2)``.
  """
  if pred_ab.shape != target_ab.shape:
    raise ValueError(f"ab_l2_loss: shapes differ, {pred_ab.shape} and {target_ab.shape}.")
  diff = jnp.asarray(pred_ab, jnp.float32) - jnp.asarray(target_ab, jnp.float32)
  return jnp.mean(jnp.square(diff))


def _srgb_to_ab_float64(rgb: np.ndarray) -> np.ndarray:
  """sRGB [P, 3] in [0, 1] -> ab [P, 2], in float64 NumPy (same definition as jssl.ops.color)."""
  linear = np.where(rgb > 0.04045, ((np.maximum(rgb, 0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
  t = (linear @ XYZ_FROM_RGB.T) / D65_WHITE
  delta = 6 / 29
  f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4 / 29)
  return np.stack([500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=-1)


def _cube_surface(levels: int) -> np.ndarray:
  """Every point of a ``levels``-per-edge grid on the six faces of the unit cube, [P, 3]."""
  grid = np.linspace(0.0, 1.0, levels)
  u, v = (m.ravel() for m in np.meshgrid(grid, grid, indexing="ij"))
  faces = []
  for axis in range(3):
    free = [c for c in range(3) if c != axis]
    for value in (0.0, 1.0):
      face = np.empty((u.size, 3))
      face[:, axis], face[:, free[0]], face[:, free[1]] = value, u, v
      faces.append(face)
  return np.concatenate(faces)


@functools.lru_cache(maxsize=8)
def _ab_bins_cached(grid: float) -> np.ndarray:
  ab = _srgb_to_ab_float64(_cube_surface(_GAMUT_LEVELS))
  cells = np.unique(np.round(ab / grid).astype(np.int64), axis=0)  # sorted by (a, b)
  return (cells * grid).astype(np.float32)


def ab_bins(grid: float = 10) -> np.ndarray:
  """Centres of the ``grid``-spaced ab bins that sRGB colours fall in (nearest centre).

  Bin centres sit on multiples of ``grid`` (so (0, 0) is one), as in Zhang et al. A bin is
  kept when some 8-bit sRGB colour's ab rounds to it. Sampling the cube's *surface* at all
  256 levels finds every such bin: the lightest and darkest colour with a given ab lie on
  the gamut's boundary, which is the image of the cube's surface (checked against all 256^3
  colours for grid 10). Computed once per ``grid`` in float64 and cached.

  grid = 10 gives **261** bins (Zhang et al. report 313 for their gamut, which was built
  from ImageNet statistics rather than from the exact sRGB cube). The continuous sRGB gamut
  also grazes bin (20, -80), which no 8-bit colour reaches; it is left out.

  Args:
    grid: bin spacing in ab units.

  Returns:
    ``[Q, 2]`` float32 (a, b) centres, sorted by a then b; a fresh copy each call.
  """
  if not grid > 0:
    raise ValueError(f"ab_bins: grid must be > 0, got {grid}.")
  return _ab_bins_cached(float(grid)).copy()


def _check_ab(ab, bins, name: str) -> None:
  if ab.ndim < 1 or ab.shape[-1] != 2:
    raise ValueError(f"{name}: expected ab values [..., 2], got shape {ab.shape}.")
  if bins.ndim != 2 or bins.shape[-1] != 2:
    raise ValueError(f"{name}: expected bin centres [Q, 2], got shape {bins.shape}.")


def _squared_distances(ab: jax.Array, bins: jax.Array) -> jax.Array:
  """``[..., 2]``, ``[Q, 2]`` -> ``[..., Q]`` squared ab distances.

  Differences first, not |x|^2 - 2 x.c + |c|^2: no cancellation, and no float32 matmul
  (bfloat16 passes on TPU by default).
  """
  diff = jnp.asarray(ab, jnp.float32)[..., None, :] - jnp.asarray(bins, jnp.float32)
  return jnp.sum(jnp.square(diff), axis=-1)


def _nearest_soft_weights(ab, bins, neighbours: int, sigma: float) -> tuple[jax.Array, jax.Array]:
  """The ``neighbours`` nearest bins of each pixel and their normalised Gaussian weights.

  Returns:
    ``(indices, weights)``, both ``[..., neighbours]``, nearest bin first (ties broken
    towards the lower bin index, as ``argmax`` breaks them).
  """
  if not 1 <= neighbours <= bins.shape[0]:
    raise ValueError(f"neighbours must be in [1, Q={bins.shape[0]}], got {neighbours}.")
  if not sigma > 0:
    raise ValueError(f"sigma must be > 0, got {sigma}.")
  neg_sq_dist, indices = jax.lax.top_k(-_squared_distances(ab, bins), neighbours)
  # Softmax of the Gaussian log-weights: the shift by the nearest bin keeps far-off ab finite.
  # The barrier stops XLA:CPU from fusing the [..., Q] distances and the top-k into each
  # element of the [..., Q] consumers, which recomputed them per bin (measured 9.5 s -> 1.2 s
  # for 256 x 32 x 32 pixels and 261 bins).
  return jax.lax.optimization_barrier((indices, jax.nn.softmax(neg_sq_dist / (2 * sigma**2), axis=-1)))


def soft_encode(ab: jax.Array, bins, *, neighbours: int = 5, sigma: float = 5.0) -> jax.Array:
  """Zhang et al.'s soft target: Gaussian weights on each pixel's nearest bins.

  Args:
    ab: ``[..., 2]`` ab values, in ab units.
    bins: ``[Q, 2]`` bin centres (``ab_bins()``).
    neighbours: how many nearest bins get mass.
    sigma: Gaussian width in ab units.

  Returns:
    ``[..., Q]`` float32 distribution per pixel: ``neighbours`` non-zeros summing to 1,
    largest at the nearest bin.
  """
  bins = jnp.asarray(bins, jnp.float32)
  _check_ab(ab, bins, "soft_encode")
  indices, weights = _nearest_soft_weights(ab, bins, neighbours, sigma)
  # A static loop of one-hot sums, not a [..., neighbours, Q] one-hot: each term fuses to [..., Q].
  q = jnp.arange(bins.shape[0])
  return sum(jnp.where(indices[..., k, None] == q, weights[..., k, None], 0.0) for k in range(neighbours))


def rebalancing_weights(prior: jax.Array, bins, *, lam: float = 0.5, sigma: float = 5.0) -> jax.Array:
  """Class-rebalancing weights ``w`` that boost rare colours (Zhang et al., Eq. 3-4).

  The prior is smoothed with a Gaussian of ``sigma`` over the bin centres (each bin's mass
  is spread over the bins in proportion to the kernel, so the smoothed prior still sums to
  1), mixed with uniform, inverted: ``w ~ 1 / ((1 - lam) p_smoothed + lam / Q)``, and
  scaled so that ``sum_q p_smoothed[q] w[q] = 1`` (the expected weight of a pixel is 1).

  Args:
    prior: ``[Q]`` empirical bin distribution (non-negative; normalised here).
    bins: ``[Q, 2]`` bin centres.
    lam: weight of the uniform distribution in the mix, in [0, 1]; 1 gives uniform w.
    sigma: smoothing width in ab units.

  Returns:
    ``[Q]`` float32 weights.
  """
  bins = jnp.asarray(bins, jnp.float32)
  prior = jnp.asarray(prior, jnp.float32)
  if prior.shape != bins.shape[:1]:
    raise ValueError(f"rebalancing_weights: prior must be [Q={bins.shape[0]}], got shape {prior.shape}.")
  if not 0 <= lam <= 1:
    raise ValueError(f"rebalancing_weights: lam must be in [0, 1], got {lam}.")
  if not sigma > 0:
    raise ValueError(f"rebalancing_weights: sigma must be > 0, got {sigma}.")
  kernel = jnp.exp(-_squared_distances(bins, bins) / (2 * sigma**2))  # [Q, Q], symmetric
  spread = kernel / jnp.sum(kernel, axis=0, keepdims=True)  # column r: where bin r's mass goes
  # HIGHEST: a default-precision TPU matmul would round the prior to bfloat16.
  smoothed = jnp.matmul(spread, prior / jnp.sum(prior), precision=jax.lax.Precision.HIGHEST)
  weights = 1.0 / ((1 - lam) * smoothed + lam / bins.shape[0])
  return weights / jnp.sum(smoothed * weights)


def classification_loss(
  logits: jax.Array,
  target_ab: jax.Array,
  bins,
  weights: jax.Array,
  *,
  neighbours: int = 5,
  sigma: float = 5.0,
  nearest=None,
) -> jax.Array:
  """Zhang et al.'s rebalanced multinomial cross-entropy, averaged over pixels.

  Per pixel: ``weights[argmax z] * -sum_q z_q log softmax(logits)_q`` with
  ``z = soft_encode(target_ab)``. Only the ``neighbours`` non-zeros of z are gathered, so
  no dense ``[..., Q]`` target is built.

  Args:
    logits: ``[..., Q]`` per-pixel bin logits (any float dtype; computed in float32).
    target_ab: ``[..., 2]`` target ab in ab units.
    bins: ``[Q, 2]`` bin centres.
    weights: ``[Q]`` rebalancing weights (``rebalancing_weights``; ones for no rebalancing).
    neighbours: soft-encoding neighbours.
    sigma: soft-encoding width in ab units.
    nearest: ``nearest_bins(target_ab, bins, neighbours=..., sigma=...)`` if already computed.

  Returns:
    Scalar float32 loss.
  """
  bins = jnp.asarray(bins, jnp.float32)
  _check_ab(target_ab, bins, "classification_loss")
  if logits.shape != target_ab.shape[:-1] + bins.shape[:1]:
    raise ValueError(
      f"classification_loss: logits must be {target_ab.shape[:-1] + bins.shape[:1]}, got {logits.shape}."
    )
  if weights.shape != bins.shape[:1]:
    raise ValueError(f"classification_loss: weights must be [Q={bins.shape[0]}], got shape {weights.shape}.")
  indices, soft = nearest if nearest is not None else _nearest_soft_weights(target_ab, bins, neighbours, sigma)
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  cross_entropy = -jnp.sum(soft * jnp.take_along_axis(log_probs, indices, axis=-1), axis=-1)
  return jnp.mean(jnp.asarray(weights, jnp.float32)[indices[..., 0]] * cross_entropy)


def annealed_mean(logits: jax.Array, bins, *, temperature: float = 0.38) -> jax.Array:
  """Zhang et al.'s decoding: the mean bin centre under ``softmax(logits / temperature)``.

  Temperature 1 is the mean (desaturated), -> 0 the mode (vivid but patchy); 0.38 is theirs.

  Args:
    logits: ``[..., Q]`` per-pixel bin logits.
    bins: ``[Q, 2]`` bin centres.
    temperature: > 0.

  Returns:
    ``[..., 2]`` float32 ab.
  """
  bins = jnp.asarray(bins, jnp.float32)
  if logits.shape[-1:] != bins.shape[:1]:
    raise ValueError(f"annealed_mean: logits must end in Q={bins.shape[0]}, got shape {logits.shape}.")
  if not temperature > 0:
    raise ValueError(f"annealed_mean: temperature must be > 0, got {temperature}.")
  probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32) / temperature, axis=-1)
  # HIGHEST: ab is ~100, so bfloat16 passes (TPU default) would be off by ~0.5.
  return jnp.einsum("...q,qc->...c", probs, bins, precision=jax.lax.Precision.HIGHEST)


def nearest_bins(ab: jax.Array, bins, *, neighbours: int = 5, sigma: float = 5.0) -> tuple[jax.Array, jax.Array]:
  """``(indices, weights)``, both ``[..., neighbours]``: each pixel's nearest bins, nearest
  first, and their soft-encoding weights; computed once, it serves ``classification_loss``
  and ``ab_histogram`` (the costly part of both)."""
  bins = jnp.asarray(bins, jnp.float32)
  _check_ab(ab, bins, "nearest_bins")
  return _nearest_soft_weights(ab, bins, neighbours, sigma)


def ab_histogram(target_ab: jax.Array, bins, *, nearest=None) -> jax.Array:
  """The fraction of pixels whose nearest bin is q, ``[Q]`` float32 summing to 1.

  Args:
    target_ab: ``[..., 2]`` ab values of any number of pixels.
    bins: ``[Q, 2]`` bin centres.
    nearest: ``nearest_bins(target_ab, bins, ...)`` if already computed.
  """
  bins = jnp.asarray(bins, jnp.float32)
  _check_ab(target_ab, bins, "ab_histogram")
  if nearest is not None:
    nearest = nearest[0][..., 0]
  else:
    nearest = jnp.argmin(_squared_distances(target_ab, bins), axis=-1)
  counts = jnp.bincount(nearest.ravel(), length=bins.shape[0])
  return counts.astype(jnp.float32) / nearest.size
