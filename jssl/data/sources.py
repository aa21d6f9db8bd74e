"""Data sources: unaugmented images as tf.data, one shard per process.

Every source yields elements ``{"image": uint8 [H, W, C], "label": int32 []}``
(label -1 when the source has no labels) in a fixed, deterministic order: not
shuffled, not repeated, not batched. Augmentation, shuffling and batching are
the input pipeline's job, so a source can be reused for pretraining and for
evaluation alike.

Sharding over processes is by element index: element ``i`` of a split belongs
to process ``i % process_count``.

Specs accepted by :func:`make_source`:

* ``"fashion_mnist"``: IDX files from a folder (or a prepared TFDS copy).
* ``"tfds:NAME"``: an already prepared TensorFlow Datasets dataset.
* ``"image_folder:PATH"`` (or ``"image_folder"`` with ``data_dir=PATH``): image
  files under a folder, labelled by top-level sub-folder when there are any.
* ``"sample_photos"``: seeded random square crops of scikit-image's 8 bundled
  colour photographs, labelled by photo; "test" crops come from rows "train" never
  sees. An offline colour demo set (no download), not a benchmark.
* ``"synthetic"``: seeded random blocky colour images with learnable classes, for
  benchmarks and tests.
* ``"moving_fashion_mnist"``, ``"video_folder:PATH"``: clips ``uint8 [T, H, W, C]``
  instead of images (``jssl.data.video``).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from jssl.errors import ConfigError, MissingError

# TF is only used for tf.data here; left alone it would grab every GPU's memory
# that JAX needs. Raises RuntimeError if TF already initialised its devices (the
# embedding program imported TF first): then it's out of our hands.
try:
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:
  pass

logger = logging.getLogger("jssl")

__all__ = [
  "Source",
  "make_source",
  "source_from_config",
  "DEFAULT_FASHION_MNIST_DIR",
  "IMAGE_EXTENSIONS",
  "SAMPLE_PHOTOS",
]

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where ``apt-get install dataset-fashion-mnist`` puts the IDX files."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
"""File extensions (lower-case) that ``image_folder`` picks up, case-insensitively."""

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


# ----------------------------------------------------------------------------- Source


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
    _check_process(process_index, process_count)
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

    Only image folders skip files; other sources always return ().
    """
    return ()

  def _check_split(self, split: str) -> None:
    if split not in self.splits:
      raise ConfigError(f"{self.name} has no split {split!r}; available splits: {self.splits}.")


def _check_process(process_index: int, process_count: int) -> None:
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ConfigError(
      f"Need 0 <= process_index < process_count, got process_index={process_index}, "
      f"process_count={process_count}; pass jax.process_index() and jax.process_count()."
    )


# ----------------------------------------------------------------------------- in-memory arrays


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
    _check_process(process_index, process_count)
    images, labels = self.arrays(split)
    # Shard in numpy so each process only copies its own part into the graph.
    return tf.data.Dataset.from_tensor_slices(
      {
        "image": images[process_index::process_count],
        "label": labels[process_index::process_count],
      }
    )


# ----------------------------------------------------------------------------- Fashion-MNIST / IDX


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


def _fashion_mnist(data_dir: str | None) -> Source:
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


# ----------------------------------------------------------------------------- synthetic


def _synthetic(shape: Sequence[int], examples: int, classes: int, seed: int) -> Source:
  shape = tuple(int(d) for d in shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ConfigError(f"synthetic_shape must be (H, W, C) of positive ints, got {shape}.")
  if examples < 1 or classes < 1:
    raise ConfigError(f"synthetic_examples and synthetic_classes must be >= 1, got {examples} and {classes}.")
  # "test" is a quarter of "train", but never empty so evaluation code has something to run on.
  counts = {"train": examples, "test": max(1, examples // 4)}

  def load(split):
    # Each split has its own stream so "test" isn't a prefix of "train".
    rng = np.random.default_rng([seed, ("train", "test").index(split)])
    labels = rng.integers(0, classes, size=counts[split]).astype(np.int32)
    # Blocky 4x4 colour layouts, a class template plus an image's own variation: unlike
    # white noise, two crops of one image share colours, so a contrastive model can learn
    # (tests need a loss that falls), and the classes are separable by a probe.
    templates = np.random.default_rng([seed, 2]).random((classes, 4, 4, shape[-1]))
    low = 0.6 * templates[labels] + 0.4 * rng.random((counts[split], 4, 4, shape[-1]))
    rows, cols = np.arange(shape[0]) * 4 // shape[0], np.arange(shape[1]) * 4 // shape[1]
    images = low[:, rows][:, :, cols]
    return np.round(images * 255).astype(np.uint8), labels

  return ArraySource(
    name="synthetic",
    num_classes=classes,
    channels=shape[-1],
    image_shape=shape,
    splits=("train", "test"),
    load=load,
    count=counts.__getitem__,
  )


# ----------------------------------------------------------------------------- sample photos


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


def _sample_photos(crop_size: int, crops: int, seed: int) -> Source:
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


# ----------------------------------------------------------------------------- TFDS


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TfdsSource(Source):
  builder: object = dataclasses.field(repr=False, compare=False)  # tfds.core.DatasetBuilder
  has_labels: bool = False

  def _check_split(self, split):
    # Also accepts TFDS slicing such as "train[:10%]".
    try:
      self.builder.info.splits[split]
    except Exception as e:
      raise ConfigError(f"{self.name} has no split {split!r}; available splits: {self.splits}.") from e

  def num_examples(self, split):
    self._check_split(split)
    return int(self.builder.info.splits[split].num_examples)

  def dataset(self, split, *, process_index=0, process_count=1):
    _check_process(process_index, process_count)
    self._check_split(split)
    ds = self.builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.shard(process_count, process_index)
    has_labels = self.has_labels

    def convert(example):
      label = tf.cast(example["label"], tf.int32) if has_labels else tf.constant(-1, tf.int32)
      return {"image": tf.cast(example["image"], tf.uint8), "label": label}

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _tfds(name: str, data_dir: str | None) -> Source:
  import tensorflow_datasets as tfds  # noqa: PLC0415  (slow to import; only needed here)

  where = data_dir or "the default TFDS data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  help_ = (
    f"Run `tfds build {name} --data_dir DIR` on a machine with network access, copy DIR here "
    "and pass it as `--config.data.dir`; jssl never downloads data."
  )
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise MissingError(
      f"TFDS dataset {name!r} is neither a known TFDS name nor prepared in {where}. Check the spelling, then: {help_}"
    ) from e
  if not builder.is_prepared():
    raise MissingError(f"TFDS dataset {name!r} is not prepared in {where}. {help_}")

  features = builder.info.features
  if "image" not in features:
    raise ConfigError(
      f"TFDS dataset {name!r} has no 'image' feature (it has {sorted(features.keys())}); jssl needs image datasets."
    )
  image_shape = tuple(features["image"].shape)
  label = features["label"] if "label" in features else None
  has_labels = isinstance(label, tfds.features.ClassLabel)
  return _TfdsSource(
    name=f"tfds:{name}",
    num_classes=int(label.num_classes) if has_labels else None,
    channels=int(image_shape[-1]),
    image_shape=image_shape if all(isinstance(d, int) for d in image_shape) else None,
    splits=tuple(builder.info.splits.keys()),
    builder=builder,
    has_labels=has_labels,
  )


# ----------------------------------------------------------------------------- image folder


def _is_image(filename: str) -> bool:
  # Dot-files include macOS "._x.jpg" resource forks, which are not images.
  return not filename.startswith(".") and filename.lower().endswith(IMAGE_EXTENSIONS)


def _list_images(root: str) -> list[str]:
  """Image files under ``root``, recursive, as sorted paths relative to ``root``."""
  found, seen = [], set()
  # Follows symlinked folders (datasets are often assembled from links), but visits
  # each real folder once so a link cycle cannot loop forever.
  for folder, subfolders, filenames in os.walk(root, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen:
      subfolders[:] = []
      continue
    seen.add(real)
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    rel = os.path.relpath(folder, root)
    found += [os.path.normpath(os.path.join(rel, f)) for f in filenames if _is_image(f)]
  # Sorted on "/"-joined parts so the order is the same on every machine.
  return sorted(found, key=lambda p: p.split(os.sep))


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
class _ImageFolderSource(Source):
  # {split: (absolute paths, int32 labels)}
  files: Mapping[str, tuple[tuple[str, ...], np.ndarray]] = dataclasses.field(repr=False, compare=False)
  _skipped: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

  def num_examples(self, split):
    """Number of image files found; a pass yields fewer if some turn out corrupt."""
    self._check_split(split)
    return len(self.files[split][0])

  def skipped_files(self):
    with self._lock:
      return tuple(self._skipped)

  def _decode(self, path: bytes) -> tuple[np.ndarray, bool]:
    path = path.decode()
    try:
      return decode_to_rgb(path), True
    except Exception as e:  # Whatever the reason, this file is skipped, and said so.
      with self._lock:
        first_time = path not in self._skipped
        self._skipped[path] = None
        count = len(self._skipped)
      if first_time:  # Once per file, not once per epoch.
        logger.warning(
          "Skipping unreadable image %s (%s: %s); %d file(s) skipped so far in %s.",
          path,
          type(e).__name__,
          e,
          count,
          self.name,
        )
      return np.zeros((0, 0, 3), np.uint8), False

  random_access = True  # element i of a split is file i of the sorted list; corrupt files are dropped

  def read(self, split, indices):
    self._check_split(split)
    paths, labels = self.files[split]
    paths, labels = tf.constant(paths, dtype=tf.string), tf.constant(labels, dtype=tf.int32)

    def decode(index):
      image, ok = tf.numpy_function(self._decode, [tf.gather(paths, index)], [tf.uint8, tf.bool], stateful=False)
      image.set_shape([None, None, 3])
      ok.set_shape([])
      return {"image": image, "label": tf.gather(labels, index), "index": index}, ok

    ds = indices.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.filter(lambda example, ok: ok).map(lambda example, ok: example)


def _image_folder(path: str) -> Source:
  if not os.path.isdir(path):
    raise MissingError(
      f"Image folder {path!r} does not exist (or is not a folder); check `image_folder:PATH` / `--config.data.dir`."
    )
  if os.path.isdir(os.path.join(path, "train")):
    split_roots = {s: os.path.join(path, s) for s in ("train", "test", "val") if os.path.isdir(os.path.join(path, s))}
  else:
    split_roots = {"train": path}

  listed = {split: _list_images(root) for split, root in split_roots.items()}
  for split, rels in listed.items():
    if not rels:
      raise ConfigError(
        f"No images found in {split_roots[split]!r} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}, any case)."
      )

  # Labelled iff some image sits in a sub-folder; the same sorted class list for
  # every split so a class gets the same index in "train" and "test".
  classes = sorted({rel.split(os.sep)[0] for rels in listed.values() for rel in rels if os.sep in rel})
  index = {name: i for i, name in enumerate(classes)}
  files = {}
  for split, rels in listed.items():
    root = split_roots[split]
    if classes:
      loose = [rel for rel in rels if os.sep not in rel]
      if loose:
        logger.warning(
          "Ignoring %d image(s) directly in %s (e.g. %s): the images in its sub-folders are "
          "labelled by folder, and these have no folder. Move them into a class folder.",
          len(loose),
          root,
          loose[0],
        )
      rels = [rel for rel in rels if os.sep in rel]
      if not rels:
        raise ConfigError(
          f"No images in class sub-folders of {root!r}, though other splits have classes "
          f"{classes}; accepted extensions: {', '.join(IMAGE_EXTENSIONS)}."
        )
      labels = np.array([index[rel.split(os.sep)[0]] for rel in rels], dtype=np.int32)
    else:
      labels = np.full(len(rels), -1, dtype=np.int32)
    files[split] = (tuple(os.path.join(root, rel) for rel in rels), labels)

  return _ImageFolderSource(
    name=f"image_folder:{path}",
    num_classes=len(classes) if classes else None,
    channels=3,
    image_shape=None,
    splits=tuple(files),
    files=files,
  )


# ----------------------------------------------------------------------------- entry point


def make_source(
  spec: str,
  *,
  data_dir: str | None = None,
  synthetic_shape: Sequence[int] = (32, 32, 3),
  synthetic_examples: int = 1024,
  synthetic_classes: int = 10,
  photo_crop_size: int = 64,
  photo_crops: int = 4096,
  seed: int = 0,
  video_options: Mapping[str, int] | None = None,
) -> Source:
  """Builds the data source named by ``spec``.

  Args:
    spec: "fashion_mnist", "tfds:NAME", "image_folder:PATH" (or "image_folder"
      with data_dir=PATH), "sample_photos" or "synthetic".
    data_dir: fashion_mnist: folder of IDX files (default $JSSL_DATA_DIR, then
      /usr/share/datasets/fashion-mnist), also tried as a TFDS data dir;
      tfds: the TFDS data dir; image_folder: the folder when the spec has none.
    synthetic_shape: (H, W, C) of synthetic images.
    synthetic_examples: size of the synthetic "train" split ("test" is a quarter).
    synthetic_classes: number of synthetic label classes.
    photo_crop_size: side of the sample_photos crops (at most 75, the smallest
      held-out region).
    photo_crops: size of the sample_photos "train" split ("test" is a quarter, at
      least 8).
    seed: seed of the synthetic images and labels, of the sample_photos crops and of
      the moving_fashion_mnist clips.
    video_options: video sources' settings (``clip_frames``, ``clip_size``,
      ``video_objects``, ``video_clips``; see ``jssl.data.video.make_video_source``).

  Raises:
    ValueError: unknown spec, or a folder without images.
    FileNotFoundError: the data isn't there; the message says how to get it.
  """
  kind, _, arg = spec.partition(":")
  if kind == "fashion_mnist" and not arg:
    return _fashion_mnist(data_dir)
  if kind == "tfds" and arg:
    return _tfds(arg, data_dir)
  if kind == "image_folder" and (arg or data_dir):
    return _image_folder(arg or data_dir)
  if kind == "sample_photos" and not arg:
    return _sample_photos(photo_crop_size, photo_crops, seed)
  if kind == "synthetic" and not arg:
    return _synthetic(synthetic_shape, synthetic_examples, synthetic_classes, seed)
  if (kind == "moving_fashion_mnist" and not arg) or (kind == "video_folder" and (arg or data_dir)):
    from jssl.data import video  # noqa: PLC0415  (jssl.data.video imports this module)

    return video.make_video_source(kind, arg or data_dir, seed=seed, **(video_options or {}))
  raise ConfigError(
    f"Unknown data source {spec!r}. Valid forms: 'fashion_mnist', 'tfds:NAME' (e.g. "
    "'tfds:cifar10'), 'image_folder:PATH' (or 'image_folder' with data_dir=PATH), 'sample_photos', "
    "'synthetic', 'moving_fashion_mnist', 'video_folder:PATH' (or 'video_folder' with data_dir=PATH)."
  )


def source_from_config(data, *, seed: int = 0) -> Source:
  """The source a config's ``data`` section names (``source``, ``dir``, ``synthetic_*``, ``photo_*``,
  and the video fields ``clip_frames``, ``clip_size``, ``video_objects``, ``video_clips``)."""
  # .get: configs saved before the sample_photos fields existed still load.
  video_options = {k: data[k] for k in ("clip_frames", "clip_size", "video_objects", "video_clips") if k in data}
  return make_source(
    data.source,
    data_dir=data.dir or None,
    synthetic_shape=tuple(data.synthetic_shape),
    synthetic_examples=data.synthetic_examples,
    photo_crop_size=data.get("photo_crop_size", 64),
    photo_crops=data.get("photo_crops", 4096),
    seed=seed,
    video_options=video_options,
  )
