"""The per-process tf.data input pipeline.

Each process reads only its shard of the source, repeats it, shuffles it with a fixed
seed, and hands every element a seed of its own, ``[seed, process, i]`` folded into two
integers, from which the task's stateless augmentations draw. The batches are therefore a
pure function of (config seed, process layout, step): the same every run.

How it shuffles depends on the source. Sources that read any element by its index (image
and clip folders, listed class after class) are read in one seeded permutation of the whole
split per epoch, positions dealt to the processes in turn: every batch mixes every class. The
others (in-memory arrays, TFDS) are sharded element i to process i % process_count and mixed
through a ``shuffle_buffer``; Fashion-MNIST is stored in random order, and the photo and
synthetic sets fit in the default buffer.

That is also how a resumed run finds its place. We chose a deterministic pipeline
that skips to a step over tf.data iterator checkpointing: the data position is then
just the step already in the checkpoint, nothing else has to be saved or kept in
sync, and it works for every source. ``start_step`` skips the elements of the first
``start_step`` batches *before* augmentation, so the skip replays only reading and
shuffle order: about a second per million in-memory examples (Fashion-MNIST, synthetic),
and the decode time for image folders and TFDS. Iterator checkpointing would also
have to store the shuffle buffer (``shuffle_buffer`` decoded images per process).
"""

from __future__ import annotations

import numpy as np

from jssl.data import augment
from jssl.data.sources import Source
from jssl.data.tf_host import tf


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return options


def _without_autograph(fn):
  """``fn`` for ``Dataset.map`` without AutoGraph: the augmentations and tasks branch with
  explicit ``tf.cond``/``tf.switch_case`` (Python ``if`` only on static values), so AutoGraph's
  source rewriting of every function they call (~4 s per pipeline) buys nothing."""
  return tf.autograph.experimental.do_not_convert(fn)


def _epoch_orders(n: int, *, seed: int, process_index: int, process_count: int) -> tf.data.Dataset:
  """Endless int64 element indices of a split of ``n``: epoch e visits the split in the order
  ``np.random.default_rng([seed, e]).permutation(n)``, this process taking every
  ``process_count``-th position of it from ``process_index`` on (a pure function of its arguments)."""

  def order(epoch):
    return np.random.default_rng([seed, int(epoch)]).permutation(n)[process_index::process_count]

  def epoch_indices(epoch):
    indices = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
    return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, [None]))

  return tf.data.Dataset.range(np.iinfo(np.int64).max).flat_map(epoch_indices)


def pretrain_dataset(
  source: Source,
  *,
  split: str,
  batch_size: int,
  host_example,
  seed: int,
  grayscale_to_rgb: bool = True,
  shuffle_buffer: int = 10_000,
  process_index: int = 0,
  process_count: int = 1,
  start_step: int = 0,
  with_index: bool = False,
) -> tf.data.Dataset:
  """Endless batches ``{**host_example(image, seed), "label": int32 [b]}`` for this process.

  Args:
    source: where images come from.
    batch_size: this process's share ``b`` of the global batch (drop_remainder).
    host_example: the task's ``(float32 [H, W, C] in [0, 1], int64 [2] seed) -> dict``.
    seed: the run's seed.
    grayscale_to_rgb: repeat single-channel images to 3 channels.
    start_step: the first batch is the one a fresh run would produce at this step.
    with_index: also ``"index": int32 [b]``, each example's position in the whole split
      (the order one process reads ``source.dataset(split)`` in, as ``eval_dataset`` does).
  """
  if source.random_access:  # e.g. image folders, listed class after class: a buffer would not mix them
    ds = source.read(
      split,
      _epoch_orders(source.num_examples(split), seed=seed, process_index=process_index, process_count=process_count),
    )
  else:
    ds = source.dataset(split, process_index=process_index, process_count=process_count)
    if with_index:  # This process holds elements process_index, process_index + process_count, ...
      ds = ds.enumerate().map(lambda j, example: {**example, "index": j * process_count + process_index})
    ds = ds.repeat().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.enumerate()
  ds = ds.skip(start_step * batch_size)
  base = seed * 1_000_003 + process_index

  def make(index, example):
    image = augment.to_float_rgb(example["image"], grayscale_to_rgb=grayscale_to_rgb)
    out = host_example(image, tf.stack([tf.constant(base, tf.int64), index]))
    out["label"] = tf.cast(example["label"], tf.int32)
    if with_index:
      out["index"] = tf.cast(example["index"], tf.int32)
    return out

  ds = ds.map(_without_autograph(make), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_dataset(
  source: Source,
  *,
  split: str,
  batch_size: int,
  image_size: int,
  grayscale_to_rgb: bool = True,
  process_index: int = 0,
  process_count: int = 1,
  crop_fraction: float = 1.0,
) -> tf.data.Dataset:
  """One pass of ``{"image": float32 [b, S, S, C] in [0, 1], "label": int32 [b]}``, no
  augmentation (whole image resized; ``crop_fraction`` < 1: its central part, see
  ``augment.center_resize``), the last batch possibly smaller."""
  ds = source.dataset(split, process_index=process_index, process_count=process_count)

  def make(example):
    image = augment.to_float_rgb(example["image"], grayscale_to_rgb=grayscale_to_rgb)
    image = augment.center_resize(image, image_size=image_size, crop_fraction=crop_fraction)
    return {"image": image, "label": tf.cast(example["label"], tf.int32)}

  ds = ds.map(_without_autograph(make), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options())
