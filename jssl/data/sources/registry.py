"""The name → builder registry behind ``make_source``: one ``SourceKind`` per spec prefix.

A new source is a new module of this package plus one ``SourceKind`` in ``KINDS`` (or a
``register_source`` call): ``make_source`` parses ``"KIND"`` or ``"KIND:ARG"``, checks the
argument against the kind's form and calls its builder with the parsed argument and the
settings of ``SourceOptions``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from jssl.data.sources.base import Source
from jssl.data.sources.fashion_mnist import fashion_mnist_source
from jssl.data.sources.image_folder import image_folder_source
from jssl.data.sources.moving_fashion_mnist import moving_fashion_mnist_source
from jssl.data.sources.sample_photos import sample_photos_source
from jssl.data.sources.synthetic import synthetic_source
from jssl.data.sources.tfds import tfds_source
from jssl.data.sources.video_folder import video_folder_source
from jssl.errors import ConfigError

__all__ = ["KINDS", "SourceKind", "SourceOptions", "make_source", "register_source", "source_from_config"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceOptions:
  """Every setting a builder may read besides the spec's argument (``make_source``'s keywords)."""

  data_dir: str | None = None
  synthetic_shape: Sequence[int] = (32, 32, 3)
  synthetic_examples: int = 1024
  synthetic_classes: int = 10
  photo_crop_size: int = 64
  photo_crops: int = 4096
  seed: int = 0
  video: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SourceKind:
  """A spec prefix and how to build its source.

  Attributes:
    name: the prefix, e.g. "tfds".
    build: ``(arg, options) -> Source``; ``arg`` is the text after ``name:``, None for kinds
      that take none.
    arg: what the argument is ("NAME", "PATH") when the kind requires one; None when it takes none.
    arg_from_data_dir: without ``:ARG``, ``data_dir`` is the argument ("image_folder" + data_dir=PATH).
    example: an example spec, for the error listing the kinds.
  """

  name: str
  build: Callable[[str | None, SourceOptions], Source]
  arg: str | None = None
  arg_from_data_dir: bool = False
  example: str | None = None

  def form(self) -> str:
    """How to write a spec of this kind, for messages."""
    if self.arg is None:
      return repr(self.name)
    form = f"'{self.name}:{self.arg}'"
    if self.arg_from_data_dir:
      form += f" (or '{self.name}' with data_dir={self.arg})"
    if self.example:
      form += f" (e.g. {self.example!r})"
    return form


def _video_folder(path: str, options: SourceOptions) -> Source:
  # moving_fashion_mnist's video_objects / video_clips / video_scale mean nothing to a folder.
  folder_options = {k: v for k, v in options.video.items() if k in ("clip_frames", "clip_size")}
  return video_folder_source(path, **folder_options)


KINDS: dict[str, SourceKind] = {}
"""Every known kind by name, in the order messages list them."""


def register_source(kind: SourceKind) -> SourceKind:
  """Adds ``kind`` to ``KINDS``; raises ConfigError if its name is taken."""
  if kind.name in KINDS:
    raise ConfigError(f"A data source kind named {kind.name!r} is already registered.")
  KINDS[kind.name] = kind
  return kind


for _kind in (
  SourceKind("fashion_mnist", lambda arg, o: fashion_mnist_source(o.data_dir)),
  SourceKind("tfds", lambda arg, o: tfds_source(arg, o.data_dir), arg="NAME", example="tfds:cifar10"),
  SourceKind("image_folder", lambda arg, o: image_folder_source(arg), arg="PATH", arg_from_data_dir=True),
  SourceKind("sample_photos", lambda arg, o: sample_photos_source(o.photo_crop_size, o.photo_crops, o.seed)),
  SourceKind(
    "synthetic",
    lambda arg, o: synthetic_source(o.synthetic_shape, o.synthetic_examples, o.synthetic_classes, o.seed),
  ),
  SourceKind("moving_fashion_mnist", lambda arg, o: moving_fashion_mnist_source(o.data_dir, seed=o.seed, **o.video)),
  SourceKind("video_folder", _video_folder, arg="PATH", arg_from_data_dir=True),
):
  register_source(_kind)
del _kind


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
    spec: "KIND" or "KIND:ARG" of a kind in ``KINDS``: "fashion_mnist", "tfds:NAME",
      "image_folder:PATH" (or "image_folder" with data_dir=PATH), "sample_photos",
      "synthetic", "moving_fashion_mnist", "video_folder:PATH" (or "video_folder" with
      data_dir=PATH).
    data_dir: fashion_mnist and moving_fashion_mnist: folder of IDX files (default
      $JSSL_DATA_DIR, then /usr/share/datasets/fashion-mnist), also tried as a TFDS data dir;
      tfds: the TFDS data dir; image_folder, video_folder: the folder when the spec has none.
    synthetic_shape: (H, W, C) of synthetic images.
    synthetic_examples: size of the synthetic "train" split ("test" is a quarter).
    synthetic_classes: number of synthetic label classes.
    photo_crop_size: side of the sample_photos crops (at most 75, the smallest
      held-out region).
    photo_crops: size of the sample_photos "train" split ("test" is a quarter, at
      least 8).
    seed: seed of the synthetic images and labels, of the sample_photos crops and of
      the moving_fashion_mnist clips.
    video_options: video sources' settings (``clip_frames``, ``clip_size``, and for
      moving_fashion_mnist ``video_objects``, ``video_clips``, ``video_scale``; the ``data`` fields
      of those names).

  Raises:
    ValueError: unknown spec, or a folder without images.
    FileNotFoundError: the data isn't there; the message says how to get it.
  """
  name, _, arg = spec.partition(":")
  kind = KINDS.get(name)
  if kind is not None and kind.arg_from_data_dir and not arg:
    arg = data_dir
  if kind is None or (kind.arg is None) != (not arg):  # an argument exactly when the kind takes one
    raise ConfigError(f"Unknown data source {spec!r}. Valid forms: {', '.join(k.form() for k in KINDS.values())}.")
  options = SourceOptions(
    data_dir=data_dir,
    synthetic_shape=synthetic_shape,
    synthetic_examples=synthetic_examples,
    synthetic_classes=synthetic_classes,
    photo_crop_size=photo_crop_size,
    photo_crops=photo_crops,
    seed=seed,
    video=dict(video_options or {}),
  )
  return kind.build(arg or None, options)


def source_from_config(data, *, seed: int = 0) -> Source:
  """The source a config's ``data`` section names (``source``, ``dir``, ``synthetic_*``, ``photo_*``,
  and the video fields ``clip_frames``, ``clip_size``, ``video_objects``, ``video_clips``, ``video_scale``)."""
  # .get: configs saved before the sample_photos fields existed still load.
  video_keys = ("clip_frames", "clip_size", "video_objects", "video_clips", "video_scale")
  video_options = {k: data[k] for k in video_keys if k in data}
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
