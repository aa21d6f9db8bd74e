"""Random inpainting masks in JAX, for the context-encoder task (Pathak et al. 2016).

A mask is float32 ``[S, S, 1]`` with 1 where a pixel is missing (to be inpainted)
and 0 where it is kept. Three kinds:

* ``"center"``: a centred square of about ``area_fraction`` of the image (Pathak's
  central region: a quarter of the area), the same for every example;
* ``"rectangles"``: 1 to ``max_rectangles`` axis-aligned rectangles of random
  position, aspect ratio and size, about ``area_fraction`` covered in all;
* ``"blobs"``: smooth random blobs, low-resolution noise upsampled and thresholded
  at the example's own quantile, so that very nearly ``area_fraction`` is missing.

Everything jits, with shapes fixed by the static arguments (no Python control flow
on traced values). Example ``b``'s mask is a function of ``fold_in(key, indices[b])``
alone, where ``indices`` are the examples' positions in the *global* batch: the masks
are the same however the batch is sharded over devices or processes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MASK_KINDS", "batch_masks", "center_side", "check_settings", "ring_around"]

MASK_KINDS = ("center", "rectangles", "blobs")
"""The ``kind`` values :func:`batch_masks` accepts."""

# Rectangles: aspect ratio (height / width) log-uniform in this range (narrowed per
# rectangle so it fits the image), and area a uniform factor in this range times the
# rectangle's share of the area, so sizes vary beyond what the count does.
_RECT_ASPECT = (0.5, 2.0)
_RECT_AREA_JITTER = (0.5, 1.5)
# Blobs: the noise grid is this many cells a side whatever S, so blobs scale with the image:
# 3 to 4 blobs per mask on average (at most ~7), each a sizeable hole rather than
# salt-and-pepper that local interpolation would fill (a grid of S / 8 gives ~9 at S = 64
# and ~30 at S = 128).
_BLOB_GRID = 5


def check_settings(kind: str, image_size: int, area_fraction: float, max_rectangles: int = 4) -> None:
  """Raises ValueError for settings ``batch_masks`` would refuse (callers validate configs early)."""
  if kind not in MASK_KINDS:
    raise ValueError(f"Unknown mask kind {kind!r}; valid kinds: {', '.join(map(repr, MASK_KINDS))}.")
  if not 0.0 < area_fraction < 1.0:
    raise ValueError(f"area_fraction must be in (0, 1) (the fraction of pixels masked), got {area_fraction}.")
  if int(image_size) != image_size or image_size < 1:
    raise ValueError(f"image_size must be a positive int, got {image_size}.")
  if int(max_rectangles) != max_rectangles or max_rectangles < 1:
    raise ValueError(f"max_rectangles must be a positive int, got {max_rectangles}.")


def center_side(image_size: int, area_fraction: float) -> int:
  """Side of the ``"center"`` square: the one nearest ``S * sqrt(area_fraction)`` that is exactly centred.

  The margins ``(S - side) / 2`` must be whole for the square to be symmetric, so the
  side has the parity of ``S`` (it can differ from ``round(S * sqrt(area_fraction))``
  by one pixel); it is at least 1 pixel (2 for even S).
  """
  margin = round((image_size - image_size * math.sqrt(area_fraction)) / 2)
  return max(image_size - 2 * margin, 2 - image_size % 2)


def _center(image_size: int, area_fraction: float) -> np.ndarray:
  """bool [S, S]: the centred square, a constant."""
  side = center_side(image_size, area_fraction)
  start = (image_size - side) // 2
  inside = (np.arange(image_size) >= start) & (np.arange(image_size) < start + side)
  return inside[:, None] & inside[None, :]


def _rectangles(key: jax.Array, image_size: int, area_fraction: jax.Array, max_rectangles: int) -> jax.Array:
  """bool [S, S]: the union of 1..max_rectangles random rectangles.

  All ``max_rectangles`` are drawn (fixed shapes) and the first ``count`` kept. Each
  covers ``area_fraction / count`` of the image times a jitter factor; overlaps make
  the union a little smaller than ``area_fraction`` on average.
  """
  s, n = image_size, max_rectangles
  u = jax.random.uniform(key, (1 + 4 * n,))
  count = 1 + jnp.minimum(jnp.floor(u[0] * n).astype(jnp.int32), n - 1)  # uniform in 1..n
  u_area, u_aspect, u_top, u_left = u[1:].reshape(4, n)
  jitter = _RECT_AREA_JITTER[0] + u_area * (_RECT_AREA_JITTER[1] - _RECT_AREA_JITTER[0])
  area = jnp.minimum(area_fraction / count * jitter, 1.0)  # [n], fraction of the image
  # height / width = aspect and height * width = area (in image units) fit the image iff
  # area <= aspect <= 1 / area: narrow the range so clipping doesn't shrink the area.
  lo = jnp.log(jnp.maximum(_RECT_ASPECT[0], area))
  hi = jnp.log(jnp.minimum(_RECT_ASPECT[1], 1.0 / area))
  aspect = jnp.exp(lo + u_aspect * (hi - lo))
  height = jnp.clip(jnp.round(s * jnp.sqrt(area * aspect)), 1, s).astype(jnp.int32)
  width = jnp.clip(jnp.round(s * jnp.sqrt(area / aspect)), 1, s).astype(jnp.int32)
  # Top uniform over the s - height + 1 positions that keep the rectangle inside.
  top = jnp.minimum(jnp.floor(u_top * (s - height + 1)).astype(jnp.int32), s - height)
  left = jnp.minimum(jnp.floor(u_left * (s - width + 1)).astype(jnp.int32), s - width)
  pos = jnp.arange(s)
  rows = (pos[None, :] >= top[:, None]) & (pos[None, :] < (top + height)[:, None])  # [n, S]
  cols = (pos[None, :] >= left[:, None]) & (pos[None, :] < (left + width)[:, None])  # [n, S]
  used = jnp.arange(n) < count  # [n]
  return jnp.any(used[:, None, None] & rows[:, :, None] & cols[:, None, :], axis=0)


def _blobs(key: jax.Array, image_size: int, area_fraction: jax.Array) -> jax.Array:
  """bool [S, S]: the top ``area_fraction`` of smooth noise.

  Uniform noise on a coarse fixed grid, upsampled bicubically (smooth, unlike bilinear's
  creases), thresholded at its ``k``-th largest value with ``k = round(a * S^2)``:
  exactly ``k`` pixels are missing unless values tie, which continuous noise makes
  vanishingly rare. A sort rather than ``top_k`` so that ``k`` can be traced.
  """
  s = image_size
  grid = min(s, _BLOB_GRID)
  noise = jax.random.uniform(key, (grid, grid))
  smooth = jax.image.resize(noise, (s, s), method="cubic")
  k = jnp.clip(jnp.round(area_fraction * (s * s)).astype(jnp.int32), 1, s * s)
  threshold = jnp.sort(smooth.reshape(-1))[s * s - k]
  return smooth >= threshold


def batch_masks(
  key: jax.Array,
  indices: jax.Array,
  *,
  image_size: int,
  kind: str,
  area_fraction: float = 0.25,
  max_rectangles: int = 4,
) -> jax.Array:
  """Random inpainting masks for a batch, 1 = missing pixel, 0 = kept.

  Args:
    key: PRNG key, the same on every device (e.g. the step's key).
    indices: int [B], the examples' positions in the global batch; example b's mask
      depends only on ``jax.random.fold_in(key, indices[b])``, so it is the same
      however the batch is sharded.
    image_size: side S of the (square) images, static.
    kind: "center", "rectangles" or "blobs" (see the module docstring), static.
    area_fraction: the fraction of pixels to mask, a Python float in (0, 1). "center" is
      exact up to rounding the side, "blobs" up to one pixel, "rectangles" a little
      under on average (overlaps).
    max_rectangles: "rectangles" draws between 1 and this many per mask, static.

  Returns:
    float32 [B, S, S, 1] of 0s and 1s.

  Raises:
    ValueError: unknown kind, or area_fraction, image_size or max_rectangles out of range.
  """
  check_settings(kind, image_size, area_fraction, max_rectangles)
  indices = jnp.asarray(indices)
  if indices.ndim != 1:
    raise ValueError(f"indices must be int [B], got shape {indices.shape}.")
  if kind == "center":
    # No randomness: a constant, outside the jit below.
    mask = jnp.broadcast_to(jnp.asarray(_center(image_size, area_fraction)), (indices.shape[0], image_size, image_size))
    return mask.astype(jnp.float32)[..., None]
  return _random_masks(
    key, indices, jnp.float32(area_fraction), image_size=int(image_size), kind=kind, max_rectangles=int(max_rectangles)
  )


# Jitted so that eager calls (tests, host-side previews) compile once per configuration
# rather than dispatching op by op; inside a caller's jit it is simply inlined. The area
# is traced, so changing it doesn't recompile.
@functools.partial(jax.jit, static_argnames=("image_size", "kind", "max_rectangles"))
def _random_masks(key, indices, area_fraction, *, image_size, kind, max_rectangles):
  """``batch_masks`` for the random kinds, after its checks: float32 [B, S, S, 1]."""
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
  if kind == "rectangles":
    mask = jax.vmap(lambda k: _rectangles(k, image_size, area_fraction, max_rectangles))(keys)
  else:
    mask = jax.vmap(lambda k: _blobs(k, image_size, area_fraction))(keys)
  return mask.astype(jnp.float32)[..., None]


def ring_around(mask: jax.Array, width: int) -> jax.Array:
  """The pixels within ``width`` px of a masked one (8-neighbour, Chebyshev distance) that are
  not masked themselves: ``mask [N, S, S, 1]`` -> ring ``[N, S, S, 1]`` of 0 / 1. Pathak et
  al.'s overlap region (``overlapPred``): the context right around the hole, visible in the
  input, that the network also predicts. ``width`` 0 gives no ring."""
  if width <= 0:
    return jnp.zeros_like(mask)
  size = 2 * width + 1
  grown = jax.lax.reduce_window(mask, -jnp.inf, jax.lax.max, (1, size, size, 1), (1, 1, 1, 1), "SAME")
  return grown * (1.0 - mask)
