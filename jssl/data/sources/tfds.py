"""An already prepared TensorFlow Datasets image dataset: spec ``"tfds:NAME"``."""

from __future__ import annotations

import dataclasses

from jssl.data.sources.base import Source, check_process
from jssl.data.tf_host import tf
from jssl.errors import ConfigError, MissingError

__all__ = ["TfdsSource", "tfds_source"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TfdsSource(Source):
  """A prepared TFDS image dataset; its splits accept TFDS slicing (``"train[:10%]"``)."""

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
    check_process(process_index, process_count)
    self._check_split(split)
    ds = self.builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.shard(process_count, process_index)
    has_labels = self.has_labels

    def convert(example):
      label = tf.cast(example["label"], tf.int32) if has_labels else tf.constant(-1, tf.int32)
      return {"image": tf.cast(example["image"], tf.uint8), "label": label}

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def tfds_source(name: str, data_dir: str | None) -> Source:
  """The prepared TFDS dataset ``name`` in ``data_dir`` (None: TFDS's default); never downloads.
  Needs an "image" feature; labelled when it has a ClassLabel "label"."""
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
  return TfdsSource(
    name=f"tfds:{name}",
    num_classes=int(label.num_classes) if has_labels else None,
    channels=int(image_shape[-1]),
    image_shape=image_shape if all(isinstance(d, int) for d in image_shape) else None,
    splits=tuple(builder.info.splits.keys()),
    builder=builder,
    has_labels=has_labels,
  )
