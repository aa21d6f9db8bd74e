"""Video sources: clips ``{"image": uint8 [T, H, W, C], "label": int32 []}`` for temporal pretext tasks.

A video source is a ``jssl.data.sources.Source`` whose elements are clips of ``clip_frames``
frames rather than single images; ``image_shape`` is the shape of one frame, and
``is_video(source)`` tells the two apart. Everything else (splits, sharding by element
index over processes, a fixed deterministic order) is as for image sources, so the input
pipeline needs no change: it hands each clip to the task's ``host_example``.

Two kinds, built by ``jssl.data.sources.make_source``:

* ``moving_fashion_mnist``: procedural clips in the manner of Moving MNIST (Srivastava,
  Mansimov and Salakhutdinov, "Unsupervised Learning of Video Representations using
  LSTMs", ICML 2015) with Fashion-MNIST garments instead of digits: ``video_objects``
  objects per clip, each moving with a constant velocity and bouncing off the canvas
  edges, composited with a pixel-wise max. "train" clips use the objects of the
  Fashion-MNIST train split, "test" clips those of its test split; a clip's label is the
  class of its first object. The clips are generated when a split is first read (a
  second or two per 10k clips of 8 frames at 48 px), from ``[seed, split]``.
* ``video_folder:PATH``: clips on disk. A clip is either a folder of frame images (sorted
  by name, numbers in names compared as numbers: ``frame2`` before ``frame10``) or an
  animated ``.gif``. As for image folders, a ``train`` sub-folder (and ``test``, ``val``)
  splits the data, and clips inside top-level class sub-folders are labelled by them.
  Every clip is resampled to ``clip_frames`` frames evenly spaced over its whole length
  (a shorter clip repeats frames) and each frame is centre-cropped to a square and resized
  to ``clip_size``. Unreadable clips are skipped with a warning, as unreadable images are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from jssl.data import sources
from jssl.data.sources import IMAGE_EXTENSIONS, ArraySource, Source, decode_to_rgb
from jssl.errors import ConfigError, MissingError

logger = logging.getLogger("jssl")

__all__ = [
  "moving_fashion_mnist",
  "bouncing_positions",
  "is_video",
  "make_video_source",
  "moving_fashion_mnist_source",
  "video_folder_source",
]

_FRAME_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".gif")  # a .gif is a clip of its own


def is_video(source: Source) -> bool:
  """Whether ``source`` yields clips ``[T, H, W, C]`` (a video source) rather than images."""
  return getattr(source, "clip_frames", None) is not None


# ----------------------------------------------------------------------------- moving Fashion-MNIST


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


def moving_fashion_mnist(
  images: np.ndarray,
  *,
  num_clips: int,
  frames: int = 8,
  canvas: int = 48,
  objects: int = 2,
  seed: int | Sequence[int] = 0,
  speed: tuple[float, float] = (2.0, 4.0),
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
      pixels = images[object_ids[first : first + n, k]].reshape(n, 1, -1)
      flat[index] = np.maximum(flat[index], pixels)
  clips = clips[..., None]
  return (clips, object_ids, positions) if return_tracks else clips


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ClipArraySource(ArraySource):
  """An in-memory source of clips: ``load(split)`` returns (uint8 [N, T, H, W, C], int32 [N])."""

  clip_frames: int


def moving_fashion_mnist_source(
  data_dir: str | None,
  *,
  clip_frames: int = 8,
  clip_size: int = 48,
  video_objects: int = 2,
  video_clips: int = 10_000,
  seed: int = 0,
) -> Source:
  """Moving Fashion-MNIST clips (see the module docstring) from the IDX files in ``data_dir``
  (found as the ``fashion_mnist`` source finds them); "test" has a quarter as many clips as
  "train" (``video_clips``), at least one."""
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
  garments = sources.make_source("fashion_mnist", data_dir=data_dir)
  counts = {"train": int(video_clips), "test": max(1, int(video_clips) // 4)}

  def load(split):
    images, labels = garments.arrays(split)
    clips, object_ids, _ = moving_fashion_mnist(
      images,
      num_clips=counts[split],
      frames=int(clip_frames),
      canvas=int(clip_size),
      objects=int(video_objects),
      seed=[seed, ("train", "test").index(split)],
      return_tracks=True,
    )
    return clips, labels[object_ids[:, 0]].astype(np.int32)

  return _ClipArraySource(
    name="moving_fashion_mnist",
    num_classes=garments.num_classes,
    channels=1,
    image_shape=(int(clip_size), int(clip_size), 1),
    splits=("train", "test"),
    load=load,
    count=counts.__getitem__,
    clip_frames=int(clip_frames),
  )


# ----------------------------------------------------------------------------- video folder


def _natural_key(name: str) -> list:
  """Sort key comparing digit runs as numbers: ``frame2`` < ``frame10``."""
  return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _list_clips(root: str) -> list[tuple[str, tuple[str, ...]]]:
  """Clips under ``root``: ``(path relative to root, frame file names)`` for folders of
  frames, ``(path of the .gif, ())`` for GIFs; sorted by path."""
  clips, seen = [], set()
  for folder, subfolders, filenames in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen:  # a symlink cycle
      subfolders[:] = []
      continue
    seen.add(real)
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    rel = os.path.normpath(os.path.relpath(folder, root))
    visible = [f for f in filenames if not f.startswith(".")]
    frames = sorted((f for f in visible if f.lower().endswith(_FRAME_EXTENSIONS)), key=_natural_key)
    if frames and rel != ".":
      clips.append((rel, tuple(frames)))
    elif frames:
      logger.warning(
        "Ignoring %d frame image(s) directly in %s (e.g. %s): a clip is a folder of frames or a .gif.",
        len(frames),
        root,
        frames[0],
      )
    clips += [(os.path.normpath(os.path.join(rel, f)), ()) for f in visible if f.lower().endswith(".gif")]
  return sorted(clips, key=lambda clip: clip[0].split(os.sep))


def _frame_indices(count: int, frames: int) -> np.ndarray:
  """``frames`` indices evenly spaced over ``count`` frames (repeats when count < frames)."""
  return np.rint(np.linspace(0, count - 1, frames)).astype(np.int64)


def _square_resize(image, size: int):
  """A PIL image centre-cropped to a square and resized to ``size`` (antialiased bilinear)."""
  from PIL import Image  # noqa: PLC0415

  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  # Crop first: with ``box=`` PIL's filter would also read pixels just outside the square.
  return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)


def read_clip(path: str, frame_files: Sequence[str], *, frames: int, size: int) -> np.ndarray:
  """One clip as uint8 ``[frames, size, size, 3]``: a folder of ``frame_files`` or a GIF
  (``frame_files`` empty), resampled in time and space as the module docstring says."""
  from PIL import Image  # noqa: PLC0415

  out = np.empty((frames, size, size, 3), np.uint8)
  if frame_files:
    for i, j in enumerate(_frame_indices(len(frame_files), frames)):
      out[i] = np.asarray(_square_resize(Image.fromarray(decode_to_rgb(os.path.join(path, frame_files[j]))), size))
    return out
  with Image.open(path) as gif:
    count = getattr(gif, "n_frames", 1)
    for i, j in enumerate(_frame_indices(count, frames)):
      gif.seek(int(j))
      out[i] = np.asarray(_square_resize(gif.convert("RGB"), size))
  return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class _VideoFolderSource(Source):
  # {split: (clips: tuple of (absolute path, frame file names), int32 labels)}
  clips: Mapping[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], np.ndarray]] = dataclasses.field(
    repr=False, compare=False
  )
  clip_frames: int
  clip_size: int
  _skipped: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

  def num_examples(self, split):
    """Number of clips found; a pass yields fewer if some turn out unreadable."""
    self._check_split(split)
    return len(self.clips[split][0])

  def skipped_files(self):
    with self._lock:
      return tuple(self._skipped)

  def _read(self, split: bytes, index: np.int64) -> tuple[np.ndarray, bool]:
    path, frame_files = self.clips[split.decode()][0][int(index)]
    try:
      return read_clip(path, frame_files, frames=self.clip_frames, size=self.clip_size), True
    except Exception as e:  # Whatever the reason, this clip is skipped, and said so.
      with self._lock:
        first_time = path not in self._skipped
        self._skipped[path] = None
        count = len(self._skipped)
      if first_time:
        logger.warning(
          "Skipping unreadable clip %s (%s: %s); %d clip(s) skipped so far in %s.",
          path,
          type(e).__name__,
          e,
          count,
          self.name,
        )
      return np.zeros((self.clip_frames, self.clip_size, self.clip_size, 3), np.uint8), False

  random_access = True  # element i of a split is clip i of the sorted list; unreadable clips are dropped

  def read(self, split, indices):
    self._check_split(split)
    labels = tf.constant(self.clips[split][1], dtype=tf.int32)
    shape = [self.clip_frames, self.clip_size, self.clip_size, 3]

    def read(index):
      clip, ok = tf.numpy_function(self._read, [tf.constant(split), index], [tf.uint8, tf.bool], stateful=False)
      clip.set_shape(shape)
      ok.set_shape([])
      return {"image": clip, "label": tf.gather(labels, index), "index": index}, ok

    ds = indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.filter(lambda example, ok: ok).map(lambda example, ok: example)


def video_folder_source(path: str, *, clip_frames: int = 8, clip_size: int = 48) -> Source:
  """Clips in ``path`` (see the module docstring)."""
  for name, value in (("clip_frames", clip_frames), ("clip_size", clip_size)):
    if int(value) != value or value < 1:
      raise ConfigError(f"data.{name} must be a positive integer, got {value!r}.")
  if not os.path.isdir(path):
    raise MissingError(
      f"Video folder {path!r} does not exist (or is not a folder); check `video_folder:PATH` / `--config.data.dir`."
    )
  if os.path.isdir(os.path.join(path, "train")):
    split_roots = {s: os.path.join(path, s) for s in ("train", "test", "val") if os.path.isdir(os.path.join(path, s))}
  else:
    split_roots = {"train": path}
  listed = {split: _list_clips(root) for split, root in split_roots.items()}
  for split, found in listed.items():
    if not found:
      raise ConfigError(
        f"No clips found in {split_roots[split]!r}: a clip is a sub-folder of frame images "
        f"({', '.join(_FRAME_EXTENSIONS)}) or a .gif file."
      )
  # Labelled iff some clip sits in a class folder; one sorted class list for every split.
  classes = sorted({rel.split(os.sep)[0] for found in listed.values() for rel, _ in found if os.sep in rel})
  index = {name: i for i, name in enumerate(classes)}
  clips = {}
  for split, found in listed.items():
    root = split_roots[split]
    if classes:
      loose = [rel for rel, _ in found if os.sep not in rel]
      if loose:
        logger.warning(
          "Ignoring %d clip(s) directly in %s (e.g. %s): the clips in its class sub-folders are "
          "labelled by folder, and these have no class folder.",
          len(loose),
          root,
          loose[0],
        )
      found = [(rel, frames) for rel, frames in found if os.sep in rel]
      if not found:
        raise ConfigError(f"No clips in class sub-folders of {root!r}, though other splits have classes {classes}.")
      labels = np.array([index[rel.split(os.sep)[0]] for rel, _ in found], np.int32)
    else:
      labels = np.full(len(found), -1, np.int32)
    clips[split] = (tuple((os.path.join(root, rel), frames) for rel, frames in found), labels)
  return _VideoFolderSource(
    name=f"video_folder:{path}",
    num_classes=len(classes) or None,
    channels=3,
    image_shape=(int(clip_size), int(clip_size), 3),
    splits=tuple(clips),
    clips=clips,
    clip_frames=int(clip_frames),
    clip_size=int(clip_size),
  )


# ----------------------------------------------------------------------------- entry point


def make_video_source(
  kind: str,
  location: str | None,
  *,
  seed: int = 0,
  clip_frames: int = 8,
  clip_size: int = 48,
  video_objects: int = 2,
  video_clips: int = 10_000,
) -> Source:
  """``moving_fashion_mnist`` (``location``: the Fashion-MNIST data dir, None for the
  default) or ``video_folder`` (``location``: the folder); the keyword arguments are the
  ``data`` fields of the same names."""
  if kind == "moving_fashion_mnist":
    return moving_fashion_mnist_source(
      location,
      clip_frames=clip_frames,
      clip_size=clip_size,
      video_objects=video_objects,
      video_clips=video_clips,
      seed=seed,
    )
  if kind == "video_folder":
    return video_folder_source(location, clip_frames=clip_frames, clip_size=clip_size)
  raise ConfigError(f"Unknown video source {kind!r}; choose moving_fashion_mnist or video_folder:PATH.")
