"""What every data source is: ``Source`` (splits, sharding by process, element order) and
``ArraySource``, a source whose splits are numpy arrays in memory."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np

from jssl.data.tf_host import tf
from jssl.errors import ConfigError

__all__ = ["Source", "ArraySource", "check_process"]


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset of unaugmented images, split by name and sharded by process.

  Attributes:
    name: the spec it came from, e.g. "fashion_mnist", "tfds:cifar10",
      "image_folder:/data/x", "synthetic".
    num_classes: number of label classes; None when the source has no labels.
    channels: channels C of the images yielded.
    image_shape: fixed (H, W, C) when known; None when sizes vary (image folders).
    splits: available split names.
  """

  name: str
  num_classes: int | None
  channels: int
  image_shape: tuple[int, int, int] | None
  splits: tuple[str, ...]

  def num_examples(self, split: str) -> int:
    """Number of examples in the whole split (all processes together)."""
    raise NotImplementedError

  def dataset(self, split: str, *, process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
    """This process's shard of ``split``.

    Returns:
      A tf.data.Dataset of ``{"image": uint8 [H, W, C], "label": int32 []}``
      (label -1 when unlabeled), in a fixed deterministic order, not shuffled,
      repeated nor batched. Element i of the split belongs to process
      ``i % process_count``.
    """
    if not self.random_access:
      raise NotImplementedError
    check_process(process_index, process_count)
    self._check_split(split)
    ds = self.read(split, tf.data.Dataset.range(process_index, self.num_examples(split), process_count))
    return ds.map(lambda example: {"image": example["image"], "label": example["label"]})

  # Sources that read any element by its index (``read``) get a full per-epoch shuffle from the
  # pipeline; the others (in memory, TFDS) are shuffled through a buffer.
  random_access = False

  def read(self, split: str, indices: tf.data.Dataset) -> tf.data.Dataset:
    """The elements of ``split`` at ``indices`` (int64 scalars), in that order (``random_access`` only).

    Returns:
      A tf.data.Dataset of ``{"image", "label", "index": int64 []}`` with "index" the element's
      position in the split; unreadable elements are dropped.
    """
    raise NotImplementedError(f"{self.name} cannot read elements by index.")

  def skipped_files(self) -> tuple[str, ...]:
    """Paths of files that could not be decoded and were skipped, so far.

    Only folder sources skip files; other sources always return ().
    """
    return ()

  def _check_split(self, split: str) -> None:
    if split not in self.splits:
      raise ConfigError(f"{self.name} has no split {split!r}; available splits: {self.splits}.")


def check_process(process_index: int, process_count: int) -> None:
  """Raises ConfigError unless ``0 <= process_index < process_count``."""
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ConfigError(
      f"Need 0 <= process_index < process_count, got process_index={process_index}, "
      f"process_count={process_count}; pass jax.process_index() and jax.process_count()."
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArraySource(Source):
  """A source whose splits fit in memory as numpy arrays, loaded once per split.

  ``load(split)`` returns (images uint8 [N, H, W, C], labels int32 [N]);
  ``count(split)`` returns N, ideally without loading.
  """

  load: Callable[[str], tuple[np.ndarray, np.ndarray]] = dataclasses.field(repr=False, compare=False)
  count: Callable[[str], int] = dataclasses.field(repr=False, compare=False)
  _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

  def num_examples(self, split: str) -> int:
    self._check_split(split)
    return self.count(split)

  def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole split as (images uint8 [N, H, W, C], labels int32 [N]); cached."""
    self._check_split(split)
    with self._lock:
      if split not in self._cache:
        self._cache[split] = self.load(split)
      return self._cache[split]

  def dataset(self, split, *, process_index=0, process_count=1):
    check_process(process_index, process_count)
    images, labels = self.arrays(split)
    # Shard in numpy so each process only copies its own part into the graph.
    return tf.data.Dataset.from_tensor_slices(
      {
        "image": images[process_index::process_count],
        "label": labels[process_index::process_count],
      }
    )
