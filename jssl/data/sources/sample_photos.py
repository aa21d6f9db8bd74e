"""Seeded random square crops of scikit-image's 8 bundled colour photographs, labelled by
photo: spec ``"sample_photos"``. An offline colour demo set (no download), not a benchmark.
"test" crops come from rows of each photo that "train" crops never touch."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jssl.data.sources.base import ArraySource, Source
from jssl.errors import ConfigError

__all__ = ["SAMPLE_PHOTOS", "sample_photos_source"]

SAMPLE_PHOTOS = (
  "astronaut",
  "chelsea",
  "coffee",
  "hubble_deep_field",
  "immunohistochemistry",
  "retina",
  "rocket",
  "stereo_motorcycle",
)
"""The ``sample_photos`` class names: label i marks crops of ``skimage.data.<SAMPLE_PHOTOS[i]>()``
(of stereo_motorcycle, the left view)."""


def _photo_held_out_row(height: int) -> int:
  """First "test" row of a photo ``height`` rows high: ceil(0.75 * height).

  "train" crops lie in rows [0, this) and "test" crops in [this, height), so every
  train row is < 0.75 H and every test row >= 0.75 H.
  """
  return -(-3 * height // 4)


def _photo_crop_boxes(
  rng: np.random.Generator, height: int, width: int, count: int, crop_size: int, rows: tuple[int, int]
) -> np.ndarray:
  """Random square crop boxes inside rows ``[rows[0], rows[1])`` of a ``height`` x ``width`` image.

  The side is uniform over the integers in [crop_size, min(region height, width)], so
  crops resized to crop_size show fine texture (side = crop_size: no resampling) and
  larger structure alike; the position is uniform over those keeping the box inside
  the region, so a box never straddles the region's edges.

  Returns:
    int64 [count, 3]: (top, left, side) per box, rows top..top+side-1 and columns
    left..left+side-1 of the image.

  Raises:
    ValueError: rows not inside the image, or crop_size larger than the region.
  """
  start, stop = rows
  if not 0 <= start < stop <= height:
    raise ConfigError(f"rows {rows} are not a non-empty range inside an image {height} rows high.")
  largest = min(stop - start, width)
  if not 1 <= crop_size <= largest:
    raise ConfigError(f"crop_size {crop_size} doesn't fit the {stop - start} x {width} region: at most {largest}.")
  side = rng.integers(crop_size, largest, size=count, endpoint=True)
  top = start + rng.integers(0, stop - start - side, endpoint=True)
  left = rng.integers(0, width - side, endpoint=True)
  return np.stack([top, left, side], axis=1)


@functools.lru_cache(maxsize=1)
def _load_sample_photos() -> tuple[np.ndarray, ...]:
  """The photos of ``SAMPLE_PHOTOS`` as read-only uint8 [H, W, 3]; decoded once per process (~0.5 s, ~12 MB)."""
  try:
    import skimage.data  # noqa: PLC0415  (slow to import, ~1 s; only this source needs it)
  except ImportError as e:
    raise ImportError(
      "The sample_photos data source crops scikit-image's bundled photographs: "
      "`pip install scikit-image` (no download beyond the package)."
    ) from e
  photos = []
  for name in SAMPLE_PHOTOS:
    photo = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
      photo = photo[0]  # (left view, right view, disparity map)
    photo = np.ascontiguousarray(photo[..., :3], dtype=np.uint8)
    photo.flags.writeable = False  # Shared by every source of the process.
    photos.append(photo)
  return tuple(photos)


def _sample_photo_crops(
  shapes: Sequence[tuple[int, ...]], split: str, count: int, crop_size: int, seed: int
) -> np.ndarray:
  """Where the crops of a ``sample_photos`` split come from; a pure function of its arguments.

  Crop i comes from photo ``i % len(shapes)``; each photo's boxes are drawn in turn
  from ``np.random.default_rng([seed, split index])``, in the split's rows of the photo.

  Args:
    shapes: each photo's (H, W, ...).
    split: "train" (rows above ``_photo_held_out_row``) or "test" (rows from it down).
    count: number of crops.
    crop_size: smallest side, and the side crops are resized to.
    seed: the source's seed.

  Returns:
    int64 [count, 4]: (photo, top, left, side) per crop.
  """
  rng = np.random.default_rng([seed, ("train", "test").index(split)])
  crops = np.zeros((count, 4), np.int64)
  for p, shape in enumerate(shapes):
    height, width = shape[:2]
    held_out = _photo_held_out_row(height)
    rows = (0, held_out) if split == "train" else (held_out, height)
    mine = np.arange(p, count, len(shapes))
    crops[mine, 0] = p
    crops[mine, 1:] = _photo_crop_boxes(rng, height, width, len(mine), crop_size, rows)
  return crops


def sample_photos_source(crop_size: int, crops: int, seed: int) -> Source:
  """``crops`` "train" crops resized to ``crop_size`` square, and a quarter as many "test" crops (at
  least one per photo) from rows "train" never sees; labelled by photo, a pure function of ``seed``."""
  if int(crop_size) != crop_size or crop_size < 1 or int(crops) != crops or crops < 1:
    raise ConfigError(f"photo_crop_size and photo_crops must be positive ints, got {crop_size} and {crops}.")
  crop_size, crops = int(crop_size), int(crops)
  # "test" is a quarter of "train", with at least one crop per photo.
  counts = {"train": crops, "test": max(len(SAMPLE_PHOTOS), crops // 4)}

  def load(split):
    photos = _load_sample_photos()
    # The smallest region bounds the crop size; say so rather than fail on one photo.
    largest = min(
      min(_photo_held_out_row(p.shape[0]), p.shape[0] - _photo_held_out_row(p.shape[0]), p.shape[1]) for p in photos
    )
    if crop_size > largest:
      raise ConfigError(
        f"photo_crop_size {crop_size} is too large for sample_photos: crops must fit inside each photo's "
        f"train rows and held-out test rows, the smallest of which is {largest} pixels high or wide; "
        f"use at most {largest}."
      )
    boxes = _sample_photo_crops([p.shape for p in photos], split, counts[split], crop_size, seed)
    pil = [Image.fromarray(p) for p in photos]
    images = np.empty((counts[split], crop_size, crop_size, 3), np.uint8)
    for i, (p, top, left, side) in enumerate(boxes.tolist()):
      # PIL's BOX filter is an exact area average over the box (antialiased whatever the
      # scale), and resizing from a box avoids copying the crop first.
      images[i] = np.asarray(
        pil[p].resize((crop_size, crop_size), Image.Resampling.BOX, box=(left, top, left + side, top + side))
      )
    return images, boxes[:, 0].astype(np.int32)

  return ArraySource(
    name="sample_photos",
    num_classes=len(SAMPLE_PHOTOS),
    channels=3,
    image_shape=(crop_size, crop_size, 3),
    splits=("train", "test"),
    load=load,
    count=counts.__getitem__,
  )
