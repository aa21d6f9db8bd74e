"""Data sources: unaugmented images (or clips) as tf.data, one shard per process.

Every source yields elements ``{"image": uint8 [H, W, C], "label": int32 []}``
(label -1 when the source has no labels) in a fixed, deterministic order: not
shuffled, not repeated, not batched. Augmentation, shuffling and batching are
the input pipeline's job, so a source can be reused for pretraining and for
evaluation alike.

Sharding over processes is by element index: element ``i`` of a split belongs
to process ``i % process_count``.

Specs accepted by :func:`make_source` (the kinds of ``registry.KINDS``), one module each:

* ``"fashion_mnist"``: IDX files from a folder (or a prepared TFDS copy); ``fashion_mnist``.
* ``"tfds:NAME"``: an already prepared TensorFlow Datasets dataset; ``tfds``.
* ``"image_folder:PATH"`` (or ``"image_folder"`` with ``data_dir=PATH``): image
  files under a folder, labelled by top-level sub-folder when there are any; ``image_folder``.
* ``"sample_photos"``: seeded random square crops of scikit-image's 8 bundled
  colour photographs, labelled by photo; "test" crops come from rows "train" never
  sees. An offline colour demo set (no download), not a benchmark; ``sample_photos``.
* ``"synthetic"``: seeded random blocky colour images with learnable classes, for
  benchmarks and tests; ``synthetic``.
* ``"moving_fashion_mnist"``, ``"video_folder:PATH"``: clips ``uint8 [T, H, W, C]``
  instead of images (``jssl.data.video.is_video``); ``moving_fashion_mnist``, ``video_folder``.

The rest: ``base`` (``Source``, ``ArraySource``), ``folder`` (what image and video
folders share: scanning class folders, skipping unreadable files), ``registry``
(spec prefix → builder, ``make_source``).
"""

from jssl.data.sources.base import ArraySource, Source, check_process
from jssl.data.sources.fashion_mnist import DEFAULT_FASHION_MNIST_DIR, read_idx
from jssl.data.sources.image_folder import IMAGE_EXTENSIONS, decode_to_rgb
from jssl.data.sources.registry import KINDS, SourceKind, make_source, register_source, source_from_config
from jssl.data.sources.sample_photos import SAMPLE_PHOTOS

__all__ = [
  "Source",
  "ArraySource",
  "check_process",
  "make_source",
  "source_from_config",
  "register_source",
  "SourceKind",
  "KINDS",
  "DEFAULT_FASHION_MNIST_DIR",
  "IMAGE_EXTENSIONS",
  "SAMPLE_PHOTOS",
  "decode_to_rgb",
  "read_idx",
]
