"""Image files under a folder, labelled by top-level sub-folder when there are any: spec
``"image_folder:PATH"`` (or ``"image_folder"`` with ``data_dir=PATH``).

Splits and labels as ``jssl.data.sources.folder`` lays them out; images are found
recursively, decoded by PIL to RGB at their own size (``image_shape`` None), and
unreadable ones are skipped with a warning (a split with none readable is an error).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image, ImageOps

from jssl.data.sources.folder import FolderSource, Item, scan_class_folders, sort_by_path, walk
from jssl.errors import ConfigError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderSource", "decode_to_rgb", "image_folder_source", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
"""File extensions (lower-case) that ``image_folder`` picks up, case-insensitively."""


def list_images(root: str) -> list[Item]:
  """Image files under ``root``, recursive, as ``(path relative to root, None)`` sorted by path."""
  return sort_by_path(
    [
      (os.path.normpath(os.path.join(rel, f)), None)
      for rel, filenames in walk(root)
      for f in filenames
      if f.lower().endswith(IMAGE_EXTENSIONS)
    ]
  )


def decode_to_rgb(path: str) -> np.ndarray:
  """PIL-decodes one file to uint8 [H, W, 3]; raises on anything unreadable."""
  with Image.open(path) as img:
    img.seek(0)  # First frame of animated GIF / WebP.
    try:
      # Photos are often stored sideways with an EXIF rotation tag.
      img = ImageOps.exif_transpose(img)
    except Exception:  # A broken EXIF block shouldn't cost us the pixels.
      pass
    if img.mode.startswith("I;16"):
      # 16-bit greyscale: keep the top 8 bits rather than clipping at 255.
      img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8))
    elif img.mode == "P" and "transparency" in img.info:
      img = img.convert("RGBA")  # Avoids PIL's warning converting straight to RGB.
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
  if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
    raise ConfigError(f"decoded to shape {array.shape}")
  return array


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageFolderSource(FolderSource):
  """Images of varying sizes, uint8 [H, W, 3]."""

  item_name = "image"

  def element_shape(self):
    return (None, None, 3)

  def read_item(self, path, payload):
    del payload  # an image is its path
    return decode_to_rgb(path)


def image_folder_source(path: str) -> ImageFolderSource:
  """The images in folder ``path`` (see the module docstring)."""
  items, classes = scan_class_folders(
    path,
    list_images,
    read=lambda image, _: decode_to_rgb(image),
    spec="image_folder",
    what="image",
    accepted=f"searched recursively for {', '.join(IMAGE_EXTENSIONS)}, any case",
  )
  return ImageFolderSource(
    name=f"image_folder:{path}",
    num_classes=len(classes) or None,
    channels=3,
    image_shape=None,
    splits=tuple(items),
    items=items,
  )
