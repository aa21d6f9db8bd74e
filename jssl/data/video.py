"""Clips ``uint8 [T, H, W, C]`` for temporal pretext tasks: telling video sources from image
sources, and the moving Fashion-MNIST generator.

A video source is a ``jssl.data.sources.Source`` whose elements are clips of ``clip_frames``
frames rather than single images; ``image_shape`` is the shape of one frame, and
``is_video(source)`` tells the two apart. Everything else (splits, sharding by element
index over processes, a fixed deterministic order) is as for image sources, so the input
pipeline needs no change: it hands each clip to the task's ``host_example``. The video
sources themselves (``moving_fashion_mnist``, ``video_folder:PATH``) are modules of
``jssl.data.sources``.

``moving_fashion_mnist`` makes clips in the manner of Moving MNIST (Srivastava, Mansimov
and Salakhutdinov, "Unsupervised Learning of Video Representations using LSTMs", ICML
2015): objects moving with a constant velocity, bouncing off the canvas edges, composited
with a pixel-wise max.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from jssl.errors import ConfigError

if TYPE_CHECKING:  # for annotations only: the sources import this module at run time
  from jssl.data.sources import Source

__all__ = ["bouncing_positions", "is_video", "moving_fashion_mnist"]


def is_video(source: Source) -> bool:
  """Whether ``source`` yields clips ``[T, H, W, C]`` (a video source) rather than images."""
  return getattr(source, "clip_frames", None) is not None


def bouncing_positions(
  rng: np.random.Generator,
  *,
  num_clips: int,
  frames: int,
  objects: int,
  room: tuple[int, int],
  speed: tuple[float, float],
) -> np.ndarray:
  """Top-left corners of objects that move in straight lines and bounce off the walls.

  Each object starts uniformly in ``[0, room_y] x [0, room_x]`` with a uniformly random
  direction and a speed uniform in ``speed`` (pixels per frame). Bouncing (reflecting the
  position and the velocity at a wall) is the same as folding the unbounded straight-line
  path into the room: a triangle wave of period ``2 * room`` per axis, exact however many
  walls a step crosses.

  Returns:
    int64 ``[num_clips, frames, objects, 2]``: (row, column) of each object's top-left
    corner, rounded; always in ``[0, room_y] x [0, room_x]``.
  """
  room = np.asarray(room, np.float64)
  start = rng.uniform(0.0, 1.0, (num_clips, objects, 2)) * room
  angle = rng.uniform(0.0, 2 * np.pi, (num_clips, objects))
  magnitude = rng.uniform(speed[0], speed[1], (num_clips, objects))
  velocity = magnitude[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
  unbounded = start[:, None] + velocity[:, None] * np.arange(frames, dtype=np.float64)[None, :, None, None]
  period = 2 * np.maximum(room, 1e-9)  # an axis without room keeps the object at 0
  folded = np.mod(unbounded, period)
  folded = np.where(folded > room, period - folded, folded)
  return np.rint(np.minimum(folded, room)).astype(np.int64)


def _scaled(images: np.ndarray, ids: np.ndarray, sides: np.ndarray) -> np.ndarray:
  """``images[ids]`` shrunk to ``sides`` pixels (nearest neighbour), each centred in a zero box
  of the images' own size: uint8 ``[n, T, h, w]`` for ``ids [n]`` and ``sides [n, T]``."""
  height, width = images.shape[1:]
  boxes = np.zeros((*sides.shape, height, width), np.uint8)
  for side in np.unique(sides):
    where = np.nonzero(sides == side)
    rows = (np.arange(side) * height) // side
    cols = (np.arange(side) * width) // side
    top, left = (height - side) // 2, (width - side) // 2
    boxes[where[0], where[1], top : top + side, left : left + side] = images[ids[where[0]]][:, rows][:, :, cols]
  return boxes


def moving_fashion_mnist(
  images: np.ndarray,
  *,
  num_clips: int,
  frames: int = 8,
  canvas: int = 48,
  objects: int = 2,
  seed: int | Sequence[int] = 0,
  speed: tuple[float, float] = (2.0, 4.0),
  scale: tuple[float, float] | None = None,
  return_tracks: bool = False,
):
  """Moving-MNIST-style clips of the given objects (Fashion-MNIST images, or any others).

  Clip i shows objects ``images[object_ids[i]]`` whose corners follow
  ``bouncing_positions``; overlapping objects combine by pixel-wise max, as in Moving
  MNIST. Objects always lie wholly inside the canvas. A pure function of its arguments
  (``np.random.default_rng(seed)``).

  Args:
    images: uint8 ``[M, h, w]`` (or ``[M, h, w, 1]``) objects, e.g. Fashion-MNIST's 28 x 28.
    num_clips: N.
    frames: T per clip.
    canvas: side S of the square frames; at least the objects' height and width.
    objects: K objects per clip, drawn uniformly with replacement from ``images``.
    seed: the numpy Generator's seed (an int or a sequence of ints).
    speed: (low, high) pixels per frame.
    scale: None, or (low, high): each object then changes size steadily through the clip,
      from a side of ``s0 * h`` to ``s1 * h`` (``s0``, ``s1`` uniform in ``scale``, each its
      own, so some grow and some shrink), resampled nearest-neighbour and centred where the
      whole-size object would be: a cue to the order of frames that a pooled feature sees,
      where position is one it mostly loses.
    return_tracks: also return the object ids and positions.

  Returns:
    uint8 ``[N, T, S, S, 1]`` clips; with ``return_tracks``, ``(clips, object_ids int64
    [N, K], positions int64 [N, T, K, 2])`` (top-left (row, column) of each object).
  """
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
    raise ConfigError(f"images must be a non-empty uint8 [M, h, w] array, got {images.dtype} {images.shape}.")
  height, width = images.shape[1:]
  if min(num_clips, frames, objects) < 1:
    raise ConfigError(f"num_clips, frames and objects must be >= 1, got {num_clips}, {frames} and {objects}.")
  if canvas < max(height, width):
    raise ConfigError(f"canvas {canvas} is smaller than the {height} x {width} objects; objects must fit inside it.")
  if not 0 <= speed[0] <= speed[1]:
    raise ConfigError(f"speed must be (low, high) with 0 <= low <= high, got {speed}.")
  rng = np.random.default_rng(seed)
  object_ids = rng.integers(0, len(images), (num_clips, objects))
  positions = bouncing_positions(
    rng, num_clips=num_clips, frames=frames, objects=objects, room=(canvas - height, canvas - width), speed=speed
  )
  sides = None
  if scale is not None:
    if not 0 < scale[0] <= scale[1] <= 1:
      raise ConfigError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale}.")
    ends = rng.uniform(scale[0], scale[1], (num_clips, objects, 2))
    t = np.linspace(0.0, 1.0, frames)[None, :, None]
    factor = ends[:, None, :, 0] * (1 - t) + ends[:, None, :, 1] * t  # [N, T, K]
    sides = np.maximum(np.rint(factor * min(height, width)), 1).astype(np.int64)
  clips = np.zeros((num_clips, frames, canvas, canvas), np.uint8)
  # Paste by flat indices into the clips' buffer: the pixel (r, c) of an object with corner
  # (y, x) in frame f lands at f * S * S + (y + r) * S + x + c. One object's pixels never
  # collide, so gather-max-scatter per object is an exact max composite. Chunks of clips
  # bound the index arrays (int32 is enough within a chunk) to a few tens of MB.
  patch = (np.arange(height)[:, None] * canvas + np.arange(width)[None, :]).reshape(-1).astype(np.int32)
  chunk = max(1, 2**22 // (frames * patch.size))
  for first in range(0, num_clips, chunk):
    block = clips[first : first + chunk]
    flat = block.reshape(-1)  # a view: writes go into ``clips``
    n = len(block)
    frame_base = (np.arange(n * frames, dtype=np.int32) * canvas * canvas).reshape(n, frames)
    for k in range(objects):
      corner = positions[first : first + n, :, k]
      index = (frame_base + (corner[..., 0] * canvas + corner[..., 1]).astype(np.int32))[..., None] + patch
      if sides is None:
        pixels = images[object_ids[first : first + n, k]].reshape(n, 1, -1)
      else:
        pixels = _scaled(images, object_ids[first : first + n, k], sides[first : first + n, :, k])
        pixels = pixels.reshape(n, frames, -1)
      flat[index] = np.maximum(flat[index], pixels)
  clips = clips[..., None]
  return (clips, object_ids, positions) if return_tracks else clips
