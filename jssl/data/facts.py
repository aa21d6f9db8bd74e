"""What a run's state depends on in its data, recorded so the run restores without the data.

A task's model and batch shapes, the online probe and the schedule are built from a
``Source``'s description, not from its images: its channels, fixed image shape, number of
classes, examples per split (DeepCluster keeps one pseudo-label per training image) and,
for video sources, frames per clip. ``jssl pretrain`` records these facts in the run's
``config.json`` (``"data_facts"``, see ``jssl.workdir``); ``jssl export`` and ``jssl eval``
rebuild the state's shapes from them on a machine that does not hold the training data::

    "data_facts": {"source": "image_folder:/data/x", "num_classes": 3 | null, "channels": 3,
                   "image_shape": [H, W, C] | null, "splits": ["train", "test"],
                   "num_examples": {"train": 48, "test": 12}, "clip_frames": 8 | null}
"""

import dataclasses
from collections.abc import Mapping

from jssl.data.sources import Source
from jssl.errors import ConfigError, MissingError

FIELDS = ("source", "num_classes", "channels", "image_shape", "splits", "num_examples", "clip_frames")


def record(source: Source) -> dict:
  """The JSON-ready facts of ``source`` (counting every split: a folder lists its files)."""
  return {
    "source": source.name,
    "num_classes": None if source.num_classes is None else int(source.num_classes),
    "channels": int(source.channels),
    "image_shape": None if source.image_shape is None else [int(d) for d in source.image_shape],
    "splits": list(source.splits),
    "num_examples": {split: int(source.num_examples(split)) for split in source.splits},
    "clip_frames": getattr(source, "clip_frames", None),
  }


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecordedSource(Source):
  """A ``Source`` made of recorded facts only: it describes the data and yields none."""

  counts: Mapping[str, int] = dataclasses.field(compare=False)
  clip_frames: int | None = None  # ``jssl.data.video.is_video`` reads it

  def num_examples(self, split: str) -> int:
    if split not in self.splits:
      raise ConfigError(f"{self.name} has no split {split!r}; available splits: {self.splits}.")
    return self.counts[split]

  def dataset(self, split: str, *, process_index: int = 0, process_count: int = 1):
    raise MissingError(
      f"Only the recorded facts of {self.name} are at hand, not its data; point the config at a copy of the data."
    )


def source_from_facts(facts: Mapping) -> RecordedSource:
  """The ``RecordedSource`` of facts written by ``record``."""
  missing = [field for field in FIELDS if field not in facts]
  if missing:
    raise ConfigError(f"The recorded data facts lack {', '.join(missing)}; expected the fields {', '.join(FIELDS)}.")
  return RecordedSource(
    name=str(facts["source"]),
    num_classes=facts["num_classes"],
    channels=int(facts["channels"]),
    image_shape=None if facts["image_shape"] is None else tuple(int(d) for d in facts["image_shape"]),
    splits=tuple(facts["splits"]),
    counts={str(split): int(n) for split, n in facts["num_examples"].items()},
    clip_frames=facts["clip_frames"],
  )
