"""Tests for jssl.data.sources: IDX parsing, TFDS, image folders, synthetic data, sharding."""

import gzip
import logging
import os
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from jssl.data import sources
from jssl.data.sources import make_source, registry, sample_photos

# ----------------------------------------------------------------------------- helpers


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
  return magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()


def _write_fashion_mnist(folder, *, n_train=6, n_test=3, gz=True, seed=0):
  """Writes the four IDX files; returns {split: (images [N,28,28], labels [N])}."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  arrays = {}
  for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    for kind, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
      path = os.path.join(folder, f"{prefix}-{kind}-ubyte" + (".gz" if gz else ""))
      with (gzip.open if gz else open)(path, "wb") as f:
        f.write(_idx_bytes(array, magic))
    arrays[split] = (images, labels)
  return arrays


def _elements(ds):
  return [(e["image"], int(e["label"])) for e in ds.as_numpy_iterator()]


def _save(path, array, mode=None, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path, **kwargs)


# ----------------------------------------------------------------------------- fashion_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
  expected = _write_fashion_mnist(tmp_path, gz=gz)
  source = make_source("fashion_mnist", data_dir=str(tmp_path))
  assert (source.num_classes, source.channels, source.image_shape) == (10, 1, (28, 28, 1))
  assert source.splits == ("train", "test")
  assert source.num_examples("train") == 6 and source.num_examples("test") == 3
  for split, (images, labels) in expected.items():
    got = _elements(source.dataset(split))
    assert all(img.dtype == np.uint8 and img.shape == (28, 28, 1) for img, _ in got)
    np.testing.assert_array_equal(np.stack([img[..., 0] for img, _ in got]), images)
    assert [label for _, label in got] == labels.tolist()
  spec = source.dataset("train").element_spec
  assert spec["label"].dtype.name == "int32" and spec["image"].dtype.name == "uint8"


def test_idx_bad_magic_number_is_a_clear_error(tmp_path):
  _write_fashion_mnist(tmp_path, gz=False)
  # A labels file where the images file should be.
  (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros(4, np.uint8), 2049))
  source = make_source("fashion_mnist", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"magic number 2049, expected 2051"):
    source.dataset("train")


def test_idx_truncated_file_is_a_clear_error(tmp_path):
  _write_fashion_mnist(tmp_path, gz=False)
  path = tmp_path / "t10k-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(ValueError, match="truncated"):
    make_source("fashion_mnist", data_dir=str(tmp_path)).dataset("test")


def test_fashion_mnist_env_var_overrides_default_dir(tmp_path, monkeypatch):
  _write_fashion_mnist(tmp_path, n_train=5, n_test=2)
  monkeypatch.setenv("JSSL_DATA_DIR", str(tmp_path))
  source = make_source("fashion_mnist")
  assert source.num_examples("train") == 5 and source.num_examples("test") == 2


def test_fashion_mnist_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.delenv("JSSL_DATA_DIR", raising=False)
  # The TFDS fallback looks in the same empty folder, so it must fail too.
  assert not tfds.builder("fashion_mnist", data_dir=str(tmp_path)).is_prepared()
  with pytest.raises(FileNotFoundError) as info:
    make_source("fashion_mnist", data_dir=str(tmp_path))
  message = str(info.value)
  assert "sudo apt-get install dataset-fashion-mnist" in message
  assert "--config.data.dir" in message and "JSSL_DATA_DIR" in message
  assert "tfds build fashion_mnist" in message


@pytest.mark.skipif(not os.path.isdir(sources.DEFAULT_FASHION_MNIST_DIR), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(monkeypatch):
  monkeypatch.delenv("JSSL_DATA_DIR", raising=False)
  source = make_source("fashion_mnist")
  # Counts come from the IDX headers; only the small test split is decoded.
  assert source.num_examples("train") == 60000 and source.num_examples("test") == 10000
  images, labels = source.arrays("test")
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(10))


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_by_seed():
  kwargs = dict(synthetic_shape=(4, 5, 3), synthetic_examples=8, synthetic_classes=3)
  a = _elements(make_source("synthetic", seed=1, **kwargs).dataset("train"))
  b = _elements(make_source("synthetic", seed=1, **kwargs).dataset("train"))
  c = _elements(make_source("synthetic", seed=2, **kwargs).dataset("train"))
  assert len(a) == 8 and a[0][0].shape == (4, 5, 3) and a[0][0].dtype == np.uint8
  assert all(np.array_equal(x, y) and lx == ly for (x, lx), (y, ly) in zip(a, b))
  assert not np.array_equal(np.stack([x for x, _ in a]), np.stack([x for x, _ in c]))
  assert {label for _, label in a} <= {0, 1, 2}
  source = make_source("synthetic", seed=1, **kwargs)
  assert source.num_examples("test") == 2 and source.num_classes == 3 and source.channels == 3
  test = _elements(source.dataset("test"))
  assert not np.array_equal(test[0][0], a[0][0])  # "test" is its own stream, not a prefix


def test_unknown_spec_names_the_valid_forms():
  with pytest.raises(ValueError, match=r"tfds:NAME.*image_folder:PATH.*synthetic"):
    make_source("cifar10")
  with pytest.raises(ValueError, match="no split 'validation'"):
    make_source("synthetic").dataset("validation")


def test_unknown_kind_lists_every_registered_kind():
  with pytest.raises(ValueError, match="Unknown data source 'nope'") as error:
    make_source("nope")
  expected = ["fashion_mnist", "tfds", "image_folder", "sample_photos", "synthetic", "moving_fashion_mnist"]
  assert list(registry.KINDS) == [*expected, "video_folder"]
  assert all(f"'{name}" in str(error.value) for name in registry.KINDS)


@pytest.mark.parametrize("spec", ["synthetic:x", "tfds", "tfds:", "image_folder", "video_folder:"])
def test_an_argument_exactly_when_the_kind_takes_one(spec):
  with pytest.raises(ValueError, match=r"Valid forms: 'fashion_mnist', 'tfds:NAME' \(e.g. 'tfds:cifar10'\)"):
    make_source(spec)  # image_folder / video_folder: no PATH and no data_dir


def test_a_registered_kind_gets_its_argument_and_the_options(monkeypatch):
  monkeypatch.setattr(registry, "KINDS", dict(registry.KINDS))  # registrations end with the test
  calls = []

  def build(arg, options):
    calls.append((arg, options.data_dir, options.seed, dict(options.video)))
    return make_source("synthetic", synthetic_examples=4, seed=options.seed)

  sources.register_source(sources.SourceKind("mine", build, arg="WHAT", arg_from_data_dir=True))
  assert make_source("mine:x", seed=3, video_options={"clip_frames": 2}).num_examples("train") == 4
  make_source("mine", data_dir="/d")
  assert calls == [("x", None, 3, {"clip_frames": 2}), ("/d", "/d", 0, {})]
  with pytest.raises(ValueError, match=r"'mine:WHAT' \(or 'mine' with data_dir=WHAT\)"):
    make_source("mine")
  with pytest.raises(ValueError, match="already registered"):
    sources.register_source(sources.SourceKind("mine", build))


# ----------------------------------------------------------------------------- tfds


class JsslTinyImages(tfds.core.GeneratorBasedBuilder):
  """10 train + 4 test 8x8 RGB images; image i is filled with value i, label i % 3."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(8, 8, 3)),
          "label": tfds.features.ClassLabel(num_classes=3),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(10), "test": self._generate_examples(4)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": np.full((8, 8, 3), i, np.uint8), "label": i % 3}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  JsslTinyImages(data_dir=data_dir).download_and_prepare()  # Local generator: no network.
  return data_dir


def test_tfds_source_on_locally_built_data(tfds_dir):
  source = make_source("tfds:jssl_tiny_images", data_dir=tfds_dir)
  assert source.name == "tfds:jssl_tiny_images"
  assert (source.num_classes, source.channels, source.image_shape) == (3, 3, (8, 8, 3))
  assert set(source.splits) == {"train", "test"}
  assert source.num_examples("train") == 10 and source.num_examples("test") == 4
  got = _elements(source.dataset("train"))
  assert sorted(int(img[0, 0, 0]) for img, _ in got) == list(range(10))
  assert all(label == int(img[0, 0, 0]) % 3 for img, label in got)
  spec = source.dataset("test").element_spec
  assert spec["label"].dtype.name == "int32" and spec["image"].dtype.name == "uint8"


def test_tfds_unprepared_says_how_to_build(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"tfds build jssl_tiny_images --data_dir"):
    make_source("tfds:jssl_tiny_images", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- image_folder


def _labelled_folder(root):
  """cat/: RGB png, grayscale JPG, RGBA png (nested); dog/: CMYK jpg, corrupt png, a txt."""
  _save(f"{root}/cat/a.png", np.full((6, 7, 3), 10, np.uint8))
  _save(f"{root}/cat/b.JPG", np.full((5, 5), 200, np.uint8), "L")
  _save(f"{root}/cat/nested/c.png", np.full((4, 4, 4), 50, np.uint8), "RGBA")
  cmyk = Image.new("CMYK", (8, 8), (0, 0, 0, 0))  # no ink: white
  os.makedirs(f"{root}/dog", exist_ok=True)
  cmyk.save(f"{root}/dog/d.jpg")
  with open(f"{root}/dog/e.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n not really a png")
  with open(f"{root}/dog/notes.txt", "w") as f:
    f.write("ignored")


def test_image_folder_labelled_by_subfolder(tmp_path, caplog):
  _labelled_folder(tmp_path)
  source = make_source(f"image_folder:{tmp_path}")
  assert (source.num_classes, source.channels, source.image_shape) == (2, 3, None)
  assert source.splits == ("train",) and source.num_examples("train") == 5  # .txt not counted
  with caplog.at_level(logging.WARNING, logger="jssl"):
    got = _elements(source.dataset("train"))
    again = _elements(source.dataset("train"))
  assert [label for _, label in got] == [0, 0, 0, 1]  # a, b, nested/c, d; e.png skipped
  assert all(img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3 for img, _ in got)
  assert [img.shape[:2] for img, _ in got] == [(6, 7), (5, 5), (4, 4), (8, 8)]
  np.testing.assert_allclose(got[1][0], 200, atol=2)  # grayscale replicated to RGB
  np.testing.assert_array_equal(got[2][0], 50)  # RGBA: alpha dropped
  np.testing.assert_allclose(got[3][0], 255, atol=3)  # CMYK without ink is white
  assert len(again) == 4
  corrupt = os.path.join(str(tmp_path), "dog", "e.png")
  assert source.skipped_files() == (corrupt,)  # counted once, not once per pass
  warnings = [r.getMessage() for r in caplog.records if r.name == "jssl"]
  assert len(warnings) == 1 and corrupt in warnings[0] and "1 file(s) skipped" in warnings[0]


def test_image_folder_unlabelled(tmp_path):
  _save(f"{tmp_path}/x.png", np.full((3, 3, 3), 1, np.uint8))
  _save(f"{tmp_path}/y.webp", np.full((3, 3, 3), 2, np.uint8), lossless=True)
  _save(f"{tmp_path}/z.gif", np.full((3, 3), 3, np.uint8), "L")
  source = make_source("image_folder", data_dir=str(tmp_path))
  assert source.num_classes is None and source.splits == ("train",)
  got = _elements(source.dataset("train"))
  assert [label for _, label in got] == [-1, -1, -1]
  assert [int(img[0, 0, 0]) for img, _ in got] == [1, 2, 3]


def test_image_folder_train_test_splits_share_class_indices(tmp_path):
  for split, classes in (("train", ["a", "b", "c"]), ("test", ["b", "c"])):
    for c in classes:
      _save(f"{tmp_path}/{split}/{c}/0.png", np.zeros((2, 2, 3), np.uint8))
  source = make_source(f"image_folder:{tmp_path}")
  assert source.splits == ("train", "test") and source.num_classes == 3
  assert [label for _, label in _elements(source.dataset("test"))] == [1, 2]


def test_image_folder_empty_or_missing(tmp_path):
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(ValueError, match=r"No images found in .*\.jpg.*\.png"):
    make_source(f"image_folder:{tmp_path}")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    make_source(f"image_folder:{tmp_path}/nope")


def _png(path, value):
  _save(f"{path}.png", np.full((4, 4, 3), value, np.uint8))


def _gif(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  frames = [Image.fromarray(np.full((4, 4), value, np.uint8), "L") for _ in range(2)]
  frames[0].save(f"{path}.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)


@pytest.mark.parametrize("kind, write", [("image_folder", _png), ("video_folder", _gif)])
def test_image_and_video_folders_scan_label_and_skip_alike(kind, write, tmp_path, caplog):
  """One tree, written as images and as clips: the same splits, classes, labels and order; a
  loose item ignored with a warning; a corrupt one skipped and counted; read by index."""
  for split, name, value in (("train", "b/x", 1), ("train", "a/y", 2), ("train", "a/z", 3), ("test", "b/w", 4)):
    write(f"{tmp_path}/{split}/{name}", value)
  write(f"{tmp_path}/train/loose", 9)  # in no class folder
  corrupt = tmp_path / "test" / "b" / f"broken.{'png' if kind == 'image_folder' else 'gif'}"
  corrupt.write_bytes(b"not really an image")
  with caplog.at_level(logging.WARNING, logger="jssl"):
    source = make_source(f"{kind}:{tmp_path}", video_options={"clip_frames": 2, "clip_size": 4})
    assert (source.splits, source.num_classes, source.random_access) == (("train", "test"), 2, True)
    assert (source.num_examples("train"), source.num_examples("test")) == (3, 2)  # corrupt counted until read

    def labels_and_values(ds):
      return [(int(e["label"]), int(e["image"].reshape(-1)[0])) for e in ds.as_numpy_iterator()]

    assert labels_and_values(source.dataset("train")) == [(0, 2), (0, 3), (1, 1)]  # a/y, a/z, b/x
    assert labels_and_values(source.dataset("test")) == [(1, 4)]  # b/broken skipped, b/w
    by_index = source.read("train", tf.data.Dataset.from_tensor_slices(np.array([2, 0], np.int64)))
    assert [int(e["index"]) for e in by_index.as_numpy_iterator()] == [2, 0]
    assert labels_and_values(by_index) == [(1, 1), (0, 2)]
  assert source.skipped_files() == (str(corrupt),)
  messages = [r.getMessage() for r in caplog.records if r.name == "jssl"]
  assert len(messages) == 2 and "Ignoring 1 " in messages[0] and "loose" in messages[0]
  assert str(corrupt) in messages[1] and "1 file(s) skipped" in messages[1]


@pytest.mark.parametrize("kind, write", [("image_folder", _png), ("video_folder", _gif)])
def test_folder_split_without_class_folders_when_others_have_them(kind, write, tmp_path):
  write(f"{tmp_path}/train/a/x", 1)
  write(f"{tmp_path}/test/y", 2)
  what = "images" if kind == "image_folder" else "clips"
  with pytest.raises(ValueError, match=f"No {what} in class sub-folders of .*test.*other splits have classes"):
    make_source(f"{kind}:{tmp_path}")


# ----------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("kind", ["synthetic", "fashion_mnist", "tfds", "image_folder"])
def test_process_shards_are_disjoint_cover_and_deterministic(kind, tmp_path, tfds_dir):
  if kind == "synthetic":
    source = make_source("synthetic", synthetic_shape=(2, 2, 1), synthetic_examples=7)
  elif kind == "fashion_mnist":
    _write_fashion_mnist(tmp_path, n_train=7)
    source = make_source("fashion_mnist", data_dir=str(tmp_path))
  elif kind == "tfds":
    source = make_source("tfds:jssl_tiny_images", data_dir=tfds_dir)
  else:
    for i in range(7):
      _save(f"{tmp_path}/{i}.png", np.full((2, 2, 3), i, np.uint8))
    source = make_source(f"image_folder:{tmp_path}")

  def key(element):
    return element[0].tobytes(), element[1]

  full = [key(e) for e in _elements(source.dataset("train"))]
  shards = [[key(e) for e in _elements(source.dataset("train", process_index=p, process_count=2))] for p in range(2)]
  assert len(full) == source.num_examples("train") and len(set(full)) == len(full)
  for p in range(2):
    assert shards[p] == full[p::2]  # element i goes to process i % 2, in order
  assert set(shards[0]).isdisjoint(shards[1]) and sorted(shards[0] + shards[1]) == sorted(full)
  assert [key(e) for e in _elements(source.dataset("train", process_index=1, process_count=2))] == shards[1]
  with pytest.raises(ValueError, match="process_index"):
    source.dataset("train", process_index=2, process_count=2)


# ----------------------------------------------------------------------------- sample_photos


def _photo_shapes():
  return [p.shape for p in sample_photos._load_sample_photos()]


def test_photo_crop_boxes_stay_inside_their_rows():
  rng = np.random.default_rng(0)
  boxes = sample_photos._photo_crop_boxes(rng, 300, 451, 500, 32, (225, 300))
  assert boxes.shape == (500, 3) and boxes.dtype == np.int64
  top, left, side = boxes.T
  assert (top >= 225).all() and (top + side <= 300).all()
  assert (left >= 0).all() and (left + side <= 451).all()
  assert side.min() == 32 and side.max() == 75  # both ends of [crop_size, region height] are drawn
  with pytest.raises(ValueError, match="at most 75"):
    sample_photos._photo_crop_boxes(rng, 300, 451, 1, 76, (225, 300))
  assert sample_photos._photo_crop_boxes(rng, 300, 451, 0, 32, (0, 225)).shape == (0, 3)


def test_sample_photo_train_and_test_crops_never_share_rows():
  shapes = _photo_shapes()
  assert len(shapes) == len(sources.SAMPLE_PHOTOS) == 8
  train = sample_photos._sample_photo_crops(shapes, "train", 4096, 32, seed=0)
  test = sample_photos._sample_photo_crops(shapes, "test", 1024, 32, seed=0)
  for split, crops in (("train", train), ("test", test)):
    np.testing.assert_array_equal(crops[:, 0], np.arange(len(crops)) % 8)  # crop i from photo i % 8
    for p, (height, width, _) in enumerate(shapes):
      top, left, side = crops[crops[:, 0] == p, 1:].T
      assert (side >= 32).all() and (left >= 0).all() and (left + side <= width).all()
      if split == "train":  # every row of a train crop is above 0.75 H ...
        assert (top >= 0).all() and (top + side - 1 < 0.75 * height).all()
      else:  # ... and every row of a test crop at or below it
        assert (top >= 0.75 * height).all() and (top + side <= height).all()


def test_sample_photos_shapes_labels_and_pixels():
  source = make_source("sample_photos", photo_crop_size=32, photo_crops=64, seed=3)
  assert source.name == "sample_photos" and source.splits == ("train", "test")
  assert (source.num_classes, source.channels, source.image_shape) == (8, 3, (32, 32, 3))
  assert source.num_examples("train") == 64 and source.num_examples("test") == 16
  small = make_source("sample_photos", photo_crop_size=32, photo_crops=8)
  assert small.num_examples("test") == 8  # at least one crop per photo
  for split, n in (("train", 64), ("test", 16)):
    images, labels = source.arrays(split)
    assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and labels.tolist() == [i % 8 for i in range(n)]
    # Real photos: textured, not flat, and in colour.
    std = images.reshape(n, -1).astype(np.float32).std(axis=1)
    assert (std > 1.0).mean() >= 0.9
    assert np.abs(images[..., 0].astype(np.float32) - images[..., 1]).mean() > 10
  # The loader resizes exactly the boxes _sample_photo_crops chose.

  images, _ = source.arrays("train")
  photos = sample_photos._load_sample_photos()
  boxes = sample_photos._sample_photo_crops([p.shape for p in photos], "train", 64, 32, seed=3)
  for i in (0, 13, 63):
    p, top, left, side = boxes[i].tolist()
    crop = Image.fromarray(photos[p][top : top + side, left : left + side]).resize((32, 32), Image.Resampling.BOX)
    np.testing.assert_array_equal(images[i], np.asarray(crop))
  elements = _elements(source.dataset("test", process_index=1, process_count=2))
  assert [label for _, label in elements] == [i % 8 for i in range(1, 16, 2)]


def test_sample_photos_deterministic_by_seed():
  a = make_source("sample_photos", photo_crop_size=16, photo_crops=16, seed=0).arrays("train")[0]
  b = make_source("sample_photos", photo_crop_size=16, photo_crops=16, seed=0).arrays("train")[0]
  c = make_source("sample_photos", photo_crop_size=16, photo_crops=16, seed=1).arrays("train")[0]
  np.testing.assert_array_equal(a, b)
  assert all(not np.array_equal(x, y) for x, y in zip(a, c))
  test = make_source("sample_photos", photo_crop_size=16, photo_crops=16, seed=0).arrays("test")[0]
  assert not any(np.array_equal(x, y) for x in test for y in a)


def test_sample_photos_bad_arguments():
  with pytest.raises(ValueError, match="at most 75"):
    make_source("sample_photos", photo_crop_size=80).arrays("test")
  with pytest.raises(ValueError, match="positive ints"):
    make_source("sample_photos", photo_crops=0)
  with pytest.raises(ValueError, match=r"sample_photos.*synthetic"):
    make_source("sample_photos:x")


def test_sample_photos_from_config():
  # A config's data section by hand: jssl.config pulls in every task module.
  old = dict(source="sample_photos", dir="", synthetic_shape=(32, 32, 3), synthetic_examples=1024)
  data = ml_collections.ConfigDict(dict(old, photo_crop_size=24, photo_crops=32))
  source = sources.source_from_config(data, seed=0)
  assert source.image_shape == (24, 24, 3) and source.num_examples("train") == 32
  # A config saved before the photo fields existed gets the defaults.
  source = sources.source_from_config(ml_collections.ConfigDict(old), seed=0)
  assert source.image_shape == (64, 64, 3) and source.num_examples("train") == 4096


def test_sample_photos_without_scikit_image_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "skimage.data", None)  # makes `import skimage.data` fail
  sample_photos._load_sample_photos.cache_clear()
  try:
    with pytest.raises(ImportError, match="pip install scikit-image"):
      make_source("sample_photos", photo_crop_size=16, photo_crops=8).arrays("train")
  finally:
    sample_photos._load_sample_photos.cache_clear()
