"""Moving Fashion-MNIST clips: spec ``"moving_fashion_mnist"``.

Procedural clips in the manner of Moving MNIST with Fashion-MNIST garments instead of
digits (``jssl.data.video.moving_fashion_mnist``): ``video_objects`` objects per clip,
each moving with a constant velocity and bouncing off the canvas edges, and growing or
shrinking steadily through the clip (``video_scale``: each object's side goes from ``s0``
to ``s1`` of 28 pixels, both uniform in that range; (1, 1) keeps them whole), composited
with a pixel-wise max. "train" clips use the objects of the Fashion-MNIST train split, "test"
clips those of its test split; a clip's label is the class of its first object. The clips
are generated when a split is first read (a second or two per 10k clips of 8 frames at
48 px), from ``[seed, split]``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jssl.data import video
from jssl.data.sources.base import ArraySource, Source
from jssl.data.sources.fashion_mnist import fashion_mnist_source
from jssl.errors import ConfigError

__all__ = ["ClipArraySource", "moving_fashion_mnist_source"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClipArraySource(ArraySource):
  """An in-memory source of clips: ``load(split)`` returns (uint8 [N, T, H, W, C], int32 [N])."""

  clip_frames: int


def moving_fashion_mnist_source(
  data_dir: str | None,
  *,
  clip_frames: int = 8,
  clip_size: int = 48,
  video_objects: int = 2,
  video_clips: int = 10_000,
  video_scale: tuple[float, float] = (1.0, 1.0),
  seed: int = 0,
) -> Source:
  """Moving Fashion-MNIST clips uint8 ``[clip_frames, clip_size, clip_size, 1]`` (see the module
  docstring) of the garments the ``fashion_mnist`` source finds with ``data_dir``; "test" has a
  quarter as many clips as "train" (``video_clips``), at least one."""
  for name, value in (
    ("clip_frames", clip_frames),
    ("clip_size", clip_size),
    ("video_objects", video_objects),
    ("video_clips", video_clips),
  ):
    if int(value) != value or value < 1:
      raise ConfigError(f"data.{name} must be a positive integer, got {value!r}.")
  if clip_size < 28:
    raise ConfigError(
      f"data.clip_size={clip_size}: moving_fashion_mnist's canvas must hold the 28 x 28 objects; "
      "use at least 28 (the objects move in a canvas of clip_size - 28 pixels of room)."
    )
  garments = fashion_mnist_source(data_dir)
  counts = {"train": int(video_clips), "test": max(1, int(video_clips) // 4)}

  def load(split):
    images, labels = garments.arrays(split)
    clips, object_ids, _ = video.moving_fashion_mnist(
      images,
      num_clips=counts[split],
      frames=int(clip_frames),
      canvas=int(clip_size),
      objects=int(video_objects),
      seed=[seed, ("train", "test").index(split)],
      scale=None if tuple(video_scale) == (1.0, 1.0) else tuple(video_scale),
      return_tracks=True,
    )
    return clips, labels[object_ids[:, 0]].astype(np.int32)

  return ClipArraySource(
    name="moving_fashion_mnist",
    num_classes=garments.num_classes,
    channels=1,
    image_shape=(int(clip_size), int(clip_size), 1),
    splits=("train", "test"),
    load=load,
    count=counts.__getitem__,
    clip_frames=int(clip_frames),
  )
