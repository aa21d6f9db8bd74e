"""Fashion-MNIST from its IDX files (``apt-get install dataset-fashion-mnist``), or from a
prepared TensorFlow Datasets copy: spec ``"fashion_mnist"``."""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence

import numpy as np

from jssl.data.sources.base import ArraySource, Source
from jssl.errors import ConfigError, MissingError

__all__ = ["DEFAULT_FASHION_MNIST_DIR", "fashion_mnist_source", "read_idx"]

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where ``apt-get install dataset-fashion-mnist`` puts the IDX files."""

_IDX_IMAGES_MAGIC = 2051  # uint8 data, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # uint8 data, 1 dimension
_FASHION_MNIST_CLASSES = 10

_FASHION_MNIST_HELP = (
  "To get Fashion-MNIST, either\n"
  "  * run `sudo apt-get install dataset-fashion-mnist` (installs the IDX files to "
  f"{DEFAULT_FASHION_MNIST_DIR}), or\n"
  "  * point `--config.data.dir` (or the JSSL_DATA_DIR environment variable) at a folder "
  "holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
  "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz], or\n"
  "  * prepare the TFDS dataset (`tfds build fashion_mnist --data_dir DIR` on a machine with "
  "network access) and pass DIR as `--config.data.dir`."
)


def _open_maybe_gzip(path: str):
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _read_idx_header(path: str, *, magic: int) -> tuple[int, ...]:
  """Dimensions stored in an IDX file's header, after checking its magic number."""
  ndim = magic & 0xFF  # The magic number's last byte is the number of dimensions.
  with _open_maybe_gzip(path) as f:
    found = int.from_bytes(f.read(4), "big")
    if found != magic:
      raise ConfigError(
        f"{path} is not the IDX file expected: magic number {found}, expected {magic} "
        f"({'images' if magic == _IDX_IMAGES_MAGIC else 'labels'}, uint8). Check the file "
        "name and contents, or fetch it again."
      )
    dims = f.read(4 * ndim)
  if len(dims) < 4 * ndim:
    raise ConfigError(f"{path} is too short to be an IDX file; delete it and fetch it again.")
  return tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))


def read_idx(path: str, *, magic: int) -> np.ndarray:
  """Reads an IDX file (optionally gzipped) into a uint8 array.

  Args:
    path: the file, ``.gz`` for gzipped.
    magic: expected magic number: 2051 for images ([N, H, W]), 2049 for labels ([N]).

  Returns:
    uint8 array of the dimensions in the header.

  Raises:
    ValueError: wrong magic number, or data shorter/longer than the header says.
  """
  dims = _read_idx_header(path, magic=magic)
  with _open_maybe_gzip(path) as f:
    data = f.read()[4 + 4 * len(dims) :]
  expected = int(np.prod(dims))
  if len(data) != expected:
    raise ConfigError(
      f"{path} holds {len(data)} bytes of data, but its header {dims} says {expected}; "
      "the file is truncated or corrupt: fetch it again."
    )
  return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find_file(folder: str, stems: Sequence[str]) -> str | None:
  for stem in stems:
    for suffix in ("", ".gz"):
      path = os.path.join(folder, stem + suffix)
      if os.path.isfile(path):
        return path
  return None


def _fashion_mnist_files(folder: str) -> dict[str, tuple[str, str]] | None:
  """{split: (images path, labels path)} if ``folder`` holds all four IDX files."""
  files = {}
  for split, prefix in (("train", "train"), ("test", "t10k")):
    # Some mirrors write "train-images.idx3-ubyte" rather than "train-images-idx3-ubyte".
    images = _find_file(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    labels = _find_file(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    if images is None or labels is None:
      return None
    files[split] = (images, labels)
  return files


def _load_idx_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
  images = read_idx(images_path, magic=_IDX_IMAGES_MAGIC)
  labels = read_idx(labels_path, magic=_IDX_LABELS_MAGIC)
  if len(images) != len(labels):
    raise ConfigError(
      f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
      "the files don't belong together: fetch them again."
    )
  return images[..., None], labels.astype(np.int32)


def fashion_mnist_source(data_dir: str | None) -> Source:
  """Fashion-MNIST's "train" and "test" splits, uint8 [28, 28, 1], 10 classes: the IDX files in
  ``data_dir`` (default $JSSL_DATA_DIR, then ``DEFAULT_FASHION_MNIST_DIR``; also one level down in
  ``fashion-mnist`` or ``fashion_mnist``), else a prepared TFDS copy in ``data_dir``; never downloads."""
  user_dir = data_dir or os.environ.get("JSSL_DATA_DIR") or None
  folder = user_dir or DEFAULT_FASHION_MNIST_DIR
  # A general data folder may hold Fashion-MNIST one level down.
  for candidate in (folder, os.path.join(folder, "fashion-mnist"), os.path.join(folder, "fashion_mnist")):
    files = _fashion_mnist_files(candidate)
    if files is not None:
      return ArraySource(
        name="fashion_mnist",
        num_classes=_FASHION_MNIST_CLASSES,
        channels=1,
        image_shape=(28, 28, 1),
        splits=("train", "test"),
        load=lambda split, files=files: _load_idx_split(*files[split]),
        count=lambda split, files=files: _read_idx_header(files[split][1], magic=_IDX_LABELS_MAGIC)[0],
      )

  # No IDX files: fall back to a prepared TFDS copy (never download).
  import tensorflow_datasets as tfds  # noqa: PLC0415  (slow to import; only needed on this path)

  try:
    builder = tfds.builder("fashion_mnist", data_dir=user_dir)
    prepared = builder.is_prepared()
  except Exception as e:  # Any failure here means "not usable"; the message says what to do.
    raise MissingError(
      f"Fashion-MNIST not found: no IDX files in {folder} and TFDS failed ({e}).\n" + _FASHION_MNIST_HELP
    ) from e
  if not prepared:
    raise MissingError(
      f"Fashion-MNIST not found: no IDX files in {folder}, and no prepared TFDS "
      f"fashion_mnist in {builder.data_dir}.\n" + _FASHION_MNIST_HELP
    )

  def load(split):
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    return data["image"].astype(np.uint8), data["label"].astype(np.int32)

  return ArraySource(
    name="fashion_mnist",
    num_classes=_FASHION_MNIST_CLASSES,
    channels=1,
    image_shape=(28, 28, 1),
    splits=("train", "test"),
    load=load,
    count=lambda split: builder.info.splits[split].num_examples,
  )
