"""Clips on disk: spec ``"video_folder:PATH"`` (or ``"video_folder"`` with ``data_dir=PATH``).

A clip is either a folder of frame images (sorted by name, numbers in names compared as
numbers: ``frame2`` before ``frame10``) or an animated ``.gif``. Splits and class labels
as ``jssl.data.sources.folder`` lays them out (a clip folder directly in a split holds no
class). Every clip is resampled to ``clip_frames`` frames evenly spaced over its whole
length (a shorter clip repeats frames) and each frame is centre-cropped to a square and
resized to ``clip_size``. Unreadable clips are skipped with a warning, as unreadable
images are (a split with none readable is an error).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jssl.data.sources.folder import FolderSource, Item, scan_class_folders, sort_by_path, walk
from jssl.data.sources.image_folder import IMAGE_EXTENSIONS, decode_to_rgb
from jssl.errors import ConfigError

logger = logging.getLogger("jssl")

__all__ = ["FRAME_EXTENSIONS", "VideoFolderSource", "list_clips", "read_clip", "video_folder_source"]

FRAME_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".gif")  # a .gif is a clip of its own
"""File extensions (lower-case) of the frames of a clip folder, matched case-insensitively."""


def _natural_key(name: str) -> list:
  """Sort key comparing digit runs as numbers: ``frame2`` < ``frame10``."""
  return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def list_clips(root: str) -> list[Item]:
  """Clips under ``root`` sorted by path: ``(path relative to root, frame file names)`` for folders
  of frames, ``(path of the .gif, ())`` for GIFs."""
  clips = []
  for rel, filenames in walk(root):
    frames = sorted((f for f in filenames if f.lower().endswith(FRAME_EXTENSIONS)), key=_natural_key)
    if frames and rel != ".":
      clips.append((rel, tuple(frames)))
    elif frames:
      logger.warning(
        "Ignoring %d frame image(s) directly in %s (e.g. %s): a clip is a folder of frames or a .gif.",
        len(frames),
        root,
        frames[0],
      )
    clips += [(os.path.normpath(os.path.join(rel, f)), ()) for f in filenames if f.lower().endswith(".gif")]
  return sort_by_path(clips)


def _frame_indices(count: int, frames: int) -> np.ndarray:
  """``frames`` indices evenly spaced over ``count`` frames (repeats when count < frames)."""
  return np.rint(np.linspace(0, count - 1, frames)).astype(np.int64)


def _square_resize(image: Image.Image, size: int) -> Image.Image:
  """A PIL image centre-cropped to a square and resized to ``size`` (antialiased bilinear)."""
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  # Crop first: with ``box=`` PIL's filter would also read pixels just outside the square.
  return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)


def read_clip(path: str, frame_files: Sequence[str], *, frames: int, size: int) -> np.ndarray:
  """One clip as uint8 ``[frames, size, size, 3]``: a folder of ``frame_files`` or a GIF
  (``frame_files`` empty), resampled in time and space as the module docstring says."""
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
class VideoFolderSource(FolderSource):
  """Clips uint8 ``[clip_frames, clip_size, clip_size, 3]``; an item's payload is its frame file
  names (empty for a GIF)."""

  clip_frames: int
  clip_size: int

  item_name = "clip"

  def element_shape(self):
    return (self.clip_frames, self.clip_size, self.clip_size, 3)

  def read_item(self, path, payload):
    return read_clip(path, payload, frames=self.clip_frames, size=self.clip_size)


def video_folder_source(path: str, *, clip_frames: int = 8, clip_size: int = 48) -> VideoFolderSource:
  """The clips in folder ``path`` (see the module docstring)."""
  for name, value in (("clip_frames", clip_frames), ("clip_size", clip_size)):
    if int(value) != value or value < 1:
      raise ConfigError(f"data.{name} must be a positive integer, got {value!r}.")
  items, classes = scan_class_folders(
    path,
    list_clips,
    read=lambda clip, frame_files: read_clip(clip, frame_files, frames=int(clip_frames), size=int(clip_size)),
    spec="video_folder",
    what="clip",
    accepted=f"a clip is a sub-folder of frame images ({', '.join(FRAME_EXTENSIONS)}) or a .gif file",
  )
  return VideoFolderSource(
    name=f"video_folder:{path}",
    num_classes=len(classes) or None,
    channels=3,
    image_shape=(int(clip_size), int(clip_size), 3),
    splits=tuple(items),
    items=items,
    clip_frames=int(clip_frames),
    clip_size=int(clip_size),
  )
