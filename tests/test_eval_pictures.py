"""The pictures `jssl eval` draws: neighbours are the true nearest ones, the files are whole."""

import json

import numpy as np
import pytest
from PIL import Image

from jssl import config as config_lib
from jssl import eval_pictures
from jssl.data.tf_host import tf
from jssl.evaluate import HISTORY_FILE, draw_pictures, images_at


def test_nearest_matches_a_float64_distance_reference():
  rng = np.random.default_rng(0)
  bank, queries = rng.normal(size=(300, 16)), rng.normal(size=(20, 16))
  bank *= rng.uniform(0.1, 10, (300, 1))  # cosine: the lengths must not matter
  found = eval_pictures.nearest(bank.astype(np.float32), queries.astype(np.float32), 5)
  unit_bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  distance = ((unit_queries[:, None] - unit_bank[None]) ** 2).sum(-1)  # monotone in -cosine
  np.testing.assert_array_equal(found, np.argsort(distance, axis=1)[:, :5])
  np.testing.assert_array_equal(eval_pictures.nearest(bank, bank[[7, 42]], 1)[:, 0], [7, 42])


def test_queries_spread_over_the_classes():
  labels = np.repeat(np.arange(10), 50)
  picked = eval_pictures.pick_queries(labels, 12, seed=0)
  assert len(set(picked.tolist())) == 12 and set(labels[picked]) == set(range(10))


def test_pretraining_minutes_add_up_the_logged_intervals():
  metrics = [{"step": 10, "images_per_s": 100.0}, {"step": 30, "images_per_s": 200.0}, {"step": 31, "loss": 1.0}]
  minutes = eval_pictures.pretraining_minutes(metrics, batch_size=60)
  assert minutes == pytest.approx({10: 10 * 60 / 100 / 60, 30: (6 + 20 * 60 / 200) / 60})


def test_projection_falls_back_to_pca_without_scikit_learn(monkeypatch):
  import sys  # noqa: PLC0415

  monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import fails
  x = np.random.default_rng(1).normal(size=(50, 8)) * np.arange(1, 9)
  points, method = eval_pictures.project_2d(x)
  assert method == "PCA" and points.shape == (50, 2)
  standardised = (x - x.mean(0)) / x.std(0)
  top = np.linalg.eigh(np.cov(standardised.T))[1][:, ::-1][:, :2]  # principal axes, float64
  np.testing.assert_allclose(np.abs(points), np.abs(standardised @ top), atol=1e-8)


def test_draw_pictures_shows_the_true_nearest_images(tmp_path):
  rng = np.random.default_rng(2)
  images = {
    "train": rng.integers(0, 256, (90, 12, 12, 1), np.uint8),
    "test": rng.integers(0, 256, (40, 12, 12, 1), np.uint8),
  }
  labels = {split: np.arange(len(x)) % 4 for split, x in images.items()}
  features = {split: rng.normal(size=(len(x), 6)).astype(np.float32) for split, x in images.items()}
  pixels = {split: x.reshape(len(x), -1).astype(np.float32) / 255 for split, x in images.items()}
  kept = {
    "features": ((features["train"], labels["train"]), (features["test"], labels["test"])),
    "raw pixels": ((pixels["train"], labels["train"]), (pixels["test"], labels["test"])),
  }

  def dataset(split):
    return tf.data.Dataset.from_tensor_slices({"image": images[split]}).batch(16)

  class Source:
    name, num_classes = "synthetic", 4

  config = config_lib.default_config()
  results = {"step": 5, "protocol": "converged", "linear_top1": 0.5, "knn_k20_top1": 0.4}
  for prefix in ("random_init_", "raw_pixels_"):
    results.update({prefix + "linear_top1": 0.3, prefix + "knn_k20_top1": 0.2})
  history = [{**results, "step": 2, "linear_top1": 0.4}, results]
  (tmp_path / HISTORY_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
  (tmp_path / "metrics.jsonl").write_text(
    "".join(json.dumps({"step": s, "loss": 1 / s, "images_per_s": 50.0}) + "\n" for s in range(1, 6))
  )
  paths = draw_pictures(tmp_path, config, Source, kept, results, dataset=dataset, splits=("train", "test"))
  shown = json.loads((tmp_path / "neighbours.json").read_text())
  queries = np.asarray(shown["test_queries"])
  assert len(queries) == 12 and len(set(queries.tolist())) == 12
  for title, (bank, tests) in (
    ("by the encoder's features", (features["train"], features["test"])),
    ("by raw pixels", (pixels["train"], pixels["test"])),
  ):
    cosine = (tests[queries] @ bank.T) / np.outer(np.linalg.norm(tests[queries], axis=1), np.linalg.norm(bank, axis=1))
    expected = np.argsort(-cosine.astype(np.float64), axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(shown[f"train_neighbours {title}"], expected)
  for path in paths:
    with Image.open(path) as picture:
      width, height = picture.size
    assert width >= 400 and height >= 250, (path.name, picture.size)
  with Image.open(paths[0]) as picture:  # 12 query rows
    assert picture.size[1] > picture.size[0] * 0.6
  np.testing.assert_allclose(
    images_at(dataset("train"), np.array([[3, 70]]))[0, 1], images["train"][70] / 255, rtol=1e-6
  )


def test_pictures_are_on_by_default_and_off_only_in_the_test_recipe():
  assert config_lib.default_config().eval.pictures is True
  assert config_lib.load_config("configs/simclr_fashion_mnist_cpu.py").eval.pictures is True
  assert config_lib.load_config("configs/smoke.py").eval.pictures is False
