"""What image folders and video folders share: scanning a folder tree into splits and
class labels, and reading its files by index with the unreadable ones skipped and counted.

Layout (both kinds): a ``train`` sub-folder (with ``test`` and ``val`` beside it when present)
splits the data, else the whole folder is "train". Items (an image, a clip) inside top-level
class sub-folders of a split are labelled by the sorted list of class names over all splits
(so a class has the same label in every split); items outside any class folder are then
ignored with a warning. Without class folders every label is -1.

Scanning also reads a few items (``first_readable``): a split none of whose items reads is an
error, raised when the source is built, so before a run writes anything; a class folder none
of whose items reads is a warning (the class keeps its label, so labels agree across splits).
It reads items in order until one reads: one item per class folder when the data is fine, all
of a class's items only when they are all unreadable.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from jssl.data.sources.base import Source
from jssl.data.tf_host import tf
from jssl.errors import ConfigError, MissingError

logger = logging.getLogger("jssl")

__all__ = ["FolderSource", "Item", "first_readable", "scan_class_folders", "sort_by_path", "walk"]

SPLIT_FOLDERS = ("train", "test", "val")
"""Sub-folders that are splits, when ``train`` is one of them."""

Item = tuple[str, Any]
"""An item of a folder: (path, what its reader needs besides the path, e.g. a clip's frame names)."""


def walk(root: str) -> Iterator[tuple[str, list[str]]]:
  """Every folder under ``root`` (itself included), top-down, as ``(path relative to root, its
  file names)``; names starting with "." are left out, folders and files alike.

  Follows symlinked folders (datasets are often assembled from links), but visits each real
  folder once so a link cycle cannot loop forever.
  """
  seen = set()
  for folder, subfolders, filenames in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen:
      subfolders[:] = []
      continue
    seen.add(real)
    # Dot-files include macOS "._x.jpg" resource forks, which are not images.
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    yield os.path.normpath(os.path.relpath(folder, root)), [f for f in filenames if not f.startswith(".")]


def sort_by_path(items: list[Item]) -> list[Item]:
  """``items`` sorted on their paths' "/"-joined parts, so the order is the same on every machine."""
  return sorted(items, key=lambda item: item[0].split(os.sep))


def first_readable(items: Sequence[Item], read: Callable[[str, Any], object]) -> tuple[int, str]:
  """How many of ``items`` fail to ``read`` before one reads, and the first failure as one line
  ("" when the first item reads); the count is ``len(items)`` when none reads."""
  failures, first = 0, ""
  for path, payload in items:
    try:
      read(path, payload)
    except Exception as e:  # Whatever the reason, the item is unreadable (as the pass will find).
      failures += 1
      first = first or f"{path}: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    else:
      break
  return failures, first


def _check_readable(
  root: str, items: Sequence[Item], labels: np.ndarray, classes: list[str], read, *, spec: str, what: str
) -> None:
  """Raises unless some item of the split in ``root`` reads; warns about each class folder
  none of whose items reads (see the module docstring)."""
  groups = [(name, [item for item, label in zip(items, labels) if label == c]) for c, name in enumerate(classes)]
  groups = [(name, group) for name, group in groups if group] or [(None, list(items))]
  unreadable = []
  for name, group in groups:
    failures, first = first_readable(group, read)
    if failures == len(group):
      unreadable.append((name, len(group), first))
  if len(unreadable) == len(groups):
    raise ConfigError(
      f"No readable {what}s in {root!r}: all {len(items)} {what}(s) there are unreadable and would be skipped "
      f"(the first: {unreadable[0][2]}). Replace or remove the broken files, or point `{spec}:PATH` at another "
      "folder."
    )
  for name, count, first in unreadable:
    logger.warning(
      "No readable %ss in class folder %s: all %d are unreadable and will be skipped (the first: %s), so class "
      "%r has no %ss in this split. Replace or remove the broken files.",
      what,
      os.path.join(root, name),
      count,
      first,
      name,
      what,
    )


def scan_class_folders(
  path: str,
  list_items: Callable[[str], list[Item]],
  *,
  read: Callable[[str, Any], object],
  spec: str,
  what: str,
  accepted: str,
) -> tuple[dict[str, tuple[tuple[Item, ...], np.ndarray]], list[str]]:
  """Splits and labels of the folder tree at ``path`` (see the module docstring).

  Args:
    path: the folder.
    list_items: ``root -> [(path relative to root, payload)]`` sorted with ``sort_by_path``; an item
      is in class folder C when its relative path starts with ``C/``.
    read: ``(absolute path, payload) -> anything``, raising on an unreadable item (the source's
      ``read_item``); used to check that each split has a readable item.
    spec: the source kind, for messages ("image_folder").
    what: an item's name, for messages ("image").
    accepted: what counts as an item, for messages.

  Returns:
    ``({split: (items with absolute paths, int32 labels [len(items)])}, class names)``; labels are
    -1 and the class list empty when there are no class folders.

  Raises:
    MissingError: ``path`` is not a folder.
    ConfigError: a split without items, without readable items, or without items in class
      folders when others have some.
  """
  if not os.path.isdir(path):
    raise MissingError(
      f"{spec.replace('_', ' ').capitalize()} {path!r} does not exist (or is not a folder); check "
      f"`{spec}:PATH` / `--config.data.dir`."
    )
  if os.path.isdir(os.path.join(path, "train")):
    roots = {s: os.path.join(path, s) for s in SPLIT_FOLDERS if os.path.isdir(os.path.join(path, s))}
  else:
    roots = {"train": path}
  listed = {split: list_items(root) for split, root in roots.items()}
  for split, items in listed.items():
    if not items:
      raise ConfigError(f"No {what}s found in {roots[split]!r} ({accepted}).")

  classes = sorted({rel.split(os.sep)[0] for items in listed.values() for rel, _ in items if os.sep in rel})
  index = {name: i for i, name in enumerate(classes)}
  scanned = {}
  for split, items in listed.items():
    root = roots[split]
    if classes:
      loose = [rel for rel, _ in items if os.sep not in rel]
      if loose:
        logger.warning(
          "Ignoring %d %s(s) directly in %s (e.g. %s): the %ss in its sub-folders are labelled by folder, "
          "and these have no folder. Move them into a class folder.",
          len(loose),
          what,
          root,
          loose[0],
          what,
        )
      items = [(rel, payload) for rel, payload in items if os.sep in rel]
      if not items:
        raise ConfigError(
          f"No {what}s in class sub-folders of {root!r}, though other splits have classes {classes} ({accepted})."
        )
      labels = np.array([index[rel.split(os.sep)[0]] for rel, _ in items], np.int32)
    else:
      labels = np.full(len(items), -1, np.int32)
    scanned[split] = (tuple((os.path.join(root, rel), payload) for rel, payload in items), labels)
    _check_readable(root, scanned[split][0], labels, classes, read, spec=spec, what=what)
  return scanned, classes


@dataclasses.dataclass(frozen=True, kw_only=True)
class FolderSource(Source):
  """A source of files read by index: element i of a split is item i of its sorted list.

  Subclasses say how to read one item (``read_item``) and the shape of an element
  (``element_shape``). An item that fails to read is dropped from the pass and its path
  logged once and kept (``skipped_files``), whatever the error: one corrupt file in a
  large folder shouldn't stop a run.
  """

  # {split: ((absolute path, payload) per item, int32 labels)}
  items: Mapping[str, tuple[tuple[Item, ...], np.ndarray]] = dataclasses.field(repr=False, compare=False)
  _skipped: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

  item_name: ClassVar[str] = "file"
  random_access = True  # element i of a split is item i of the sorted list; unreadable ones are dropped

  def element_shape(self) -> tuple[int | None, ...]:
    """The shape of an element, None for sizes that vary."""
    raise NotImplementedError

  def read_item(self, path: str, payload: Any) -> np.ndarray:
    """One item as a uint8 array of ``element_shape``; raises on anything unreadable."""
    raise NotImplementedError

  def num_examples(self, split):
    """Number of items found; a pass yields fewer if some turn out unreadable."""
    self._check_split(split)
    return len(self.items[split][0])

  def skipped_files(self):
    with self._lock:
      return tuple(self._skipped)

  def _read_or_skip(self, split: bytes, index: np.int64) -> tuple[np.ndarray, bool]:
    path, payload = self.items[split.decode()][0][int(index)]
    try:
      return self.read_item(path, payload), True
    except Exception as e:  # Whatever the reason, this item is skipped, and said so.
      with self._lock:
        first_time = path not in self._skipped
        self._skipped[path] = None
        count = len(self._skipped)
      if first_time:  # Once per file, not once per epoch.
        logger.warning(
          "Skipping unreadable %s %s (%s: %s); %d file(s) skipped so far in %s.",
          self.item_name,
          path,
          type(e).__name__,
          e,
          count,
          self.name,
        )
      return np.zeros([d or 0 for d in self.element_shape()], np.uint8), False

  def read(self, split, indices):
    self._check_split(split)
    labels = tf.constant(self.items[split][1], dtype=tf.int32)
    shape = list(self.element_shape())

    def read(index):
      element, ok = tf.numpy_function(
        self._read_or_skip, [tf.constant(split), index], [tf.uint8, tf.bool], stateful=False
      )
      element.set_shape(shape)
      ok.set_shape([])
      return {"image": element, "label": tf.gather(labels, index), "index": index}, ok

    ds = indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.filter(lambda example, ok: ok).map(lambda example, ok: example)
