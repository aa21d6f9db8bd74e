"""The per-process tf.data pipeline: shapes, determinism by seed, per-process shards."""

import os

import numpy as np
from PIL import Image

from jssl.data import augment, pipeline
from jssl.data.sources import make_source

CONFIG = augment.AugmentConfig(image_size=12, blur_prob=0.0)


def _views(image, seed):
  view1, view2 = augment.two_views(image, seed, config=CONFIG)
  return {"view1": view1, "view2": view2}


def _first_batches(seed, count=3, **kwargs):
  source = make_source("synthetic", synthetic_shape=(10, 14, 1), synthetic_examples=64)
  ds = pipeline.pretrain_dataset(
    source, split="train", batch_size=8, host_example=_views, seed=seed, shuffle_buffer=64, **kwargs
  )
  return [b for _, b in zip(range(count), ds.as_numpy_iterator())]


def test_batches_have_the_model_shapes_and_range():
  batch = _first_batches(0, count=1)[0]
  for key in ("view1", "view2"):
    assert batch[key].shape == (8, 12, 12, 3) and batch[key].dtype == np.float32
    assert 0.0 <= batch[key].min() and batch[key].max() <= 1.0
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  assert not np.allclose(batch["view1"], batch["view2"])


def test_same_seed_same_batches_other_seed_other_batches():
  a, b, c = _first_batches(0), _first_batches(0), _first_batches(1)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["view1"], y["view1"])
    np.testing.assert_array_equal(x["label"], y["label"])
  assert not np.allclose(a[0]["view1"], c[0]["view1"])


def test_processes_read_disjoint_shards():
  source = make_source("synthetic", synthetic_shape=(4, 4, 1), synthetic_examples=40)
  seen = []
  for index in range(2):
    ds = pipeline.eval_dataset(source, split="train", batch_size=7, image_size=4, process_index=index, process_count=2)
    seen.append(np.concatenate([b["image"].reshape(len(b["image"]), -1) for b in ds.as_numpy_iterator()]))
  assert len(seen[0]) == len(seen[1]) == 20
  rows = {r.tobytes() for r in seen[0]}
  assert not rows & {r.tobytes() for r in seen[1]}


def test_eval_dataset_keeps_every_example_once():
  source = make_source("synthetic", synthetic_shape=(8, 8, 3), synthetic_examples=30)
  batches = list(pipeline.eval_dataset(source, split="train", batch_size=8, image_size=8).as_numpy_iterator())
  assert [len(b["label"]) for b in batches] == [8, 8, 8, 6]
  images = np.concatenate([b["image"] for b in batches])
  expected = np.stack([e["image"] for e in source.dataset("train").as_numpy_iterator()]) / 255
  np.testing.assert_allclose(images, expected, atol=1e-6)


def test_with_index_gives_each_example_its_position_in_the_split():
  """Two processes: each index names the example it came with (shuffled), and without
  shuffling one epoch of both processes covers every position once."""
  source = make_source("synthetic", synthetic_shape=(6, 6, 1), synthetic_examples=40)
  images = np.stack([e["image"] for e in source.dataset("train").as_numpy_iterator()])

  def keep(image, seed):
    del seed
    return {"image": image}

  def batches(process_index, shuffle_buffer):
    ds = pipeline.pretrain_dataset(
      source,
      split="train",
      batch_size=5,
      host_example=keep,
      seed=0,
      shuffle_buffer=shuffle_buffer,
      grayscale_to_rgb=False,
      process_index=process_index,
      process_count=2,
      with_index=True,
    )
    return [b for _, b in zip(range(4), ds.as_numpy_iterator())]  # 20 examples: this process's epoch

  seen = []
  for index in range(2):
    for batch in batches(index, shuffle_buffer=64):
      assert batch["index"].dtype == np.int32
      np.testing.assert_allclose(batch["image"], images[batch["index"]] / 255, atol=1e-6)
    epoch = np.concatenate([b["index"] for b in batches(index, shuffle_buffer=1)])
    assert sorted(epoch) == list(range(index, 40, 2))
    seen.append(epoch)
  assert sorted(np.concatenate(seen)) == list(range(40))


def _class_sorted_folder(root, *, classes=10, per_class=200, size=4):
  """``root/c{k}/{i}.png``: image k of class c has every pixel (k * 7 + i) % 256 in channel 0, c * 20 in 1."""
  for c in range(classes):
    os.makedirs(root / f"c{c}")
    for i in range(per_class):
      pixel = np.array([(c * 7 + i) % 256, c * 20, 0], np.uint8)
      Image.fromarray(np.broadcast_to(pixel, (size, size, 3)).copy()).save(root / f"c{c}" / f"{i:03d}.png")
  return make_source(f"image_folder:{root}")


def _keep(image, seed):
  del seed
  return {"image": image}


def _folder_batches(source, *, count, seed=0, **kwargs):
  # A buffer of 1,000 over classes of 200 is ImageNet's 10,000 over classes of ~1,300, scaled.
  ds = pipeline.pretrain_dataset(
    source, split="train", batch_size=64, host_example=_keep, seed=seed, shuffle_buffer=1000, **kwargs
  )
  return [b for _, b in zip(range(count), ds.as_numpy_iterator())]


def test_class_sorted_folder_is_shuffled_over_the_whole_split(tmp_path):
  """Files are listed class after class; a shuffle buffer of 1,000 would fill each batch from
  about five classes of 200. One permutation of the whole split per epoch mixes them all, the
  same for the same seed, another order in the next epoch, each file once an epoch."""
  source = _class_sorted_folder(tmp_path)
  first = _folder_batches(source, count=64)  # 4,096 examples: two epochs of 2,000 and a bit
  assert all(len(np.unique(b["label"])) >= 8 for b in first)
  again = _folder_batches(source, count=64)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  other_seed = _folder_batches(source, count=1, seed=1)[0]
  assert not np.array_equal(first[0]["label"], other_seed["label"])
  # Each image is told apart by its (channel 0, channel 1) values; an epoch holds each once.
  keys = np.concatenate([np.round(b["image"][:, 0, 0, :2] * 255).astype(int) @ [1, 1000] for b in first])
  assert len(np.unique(keys[:2000])) == 2000 and len(np.unique(keys[2000:4000])) == 2000
  assert not np.array_equal(keys[:2000], keys[2000:4000])
  # A resumed run reads on from where a fresh run would be.
  resumed = _folder_batches(source, count=2, start_step=40)
  np.testing.assert_array_equal(resumed[0]["image"], first[40]["image"])
  np.testing.assert_array_equal(resumed[1]["label"], first[41]["label"])


def test_folder_index_names_the_file_each_process_reads_its_share(tmp_path):
  """With two processes, one epoch's positions are dealt in turn: the two processes read
  disjoint halves, and each example's "index" is its file's position in the split."""
  source = _class_sorted_folder(tmp_path, classes=4, per_class=32)
  files = np.stack([e["image"] for e in source.dataset("train").as_numpy_iterator()])
  seen = []
  for process in range(2):
    ds = pipeline.pretrain_dataset(
      source,
      split="train",
      batch_size=16,
      host_example=_keep,
      seed=3,
      process_index=process,
      process_count=2,
      with_index=True,
    )
    batches = [b for _, b in zip(range(4), ds.as_numpy_iterator())]  # 64: this process's epoch
    for batch in batches:
      assert batch["index"].dtype == np.int32
      np.testing.assert_allclose(batch["image"], files[batch["index"]] / 255, atol=1e-6)
    seen.append(np.concatenate([b["index"] for b in batches]))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(np.concatenate(seen)) == list(range(128))
