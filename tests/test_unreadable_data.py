"""Data a run cannot use is refused before anything is written: a folder whose files are all
unreadable, a class folder that ends up empty (warned), and ``jssl eval`` on a source without
the split it would score on (``--config.eval.split`` names another)."""

import json
import logging
import os

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from random_runs import write_random_run

from jssl import cli, train
from jssl.config import apply_overrides, load_config
from jssl.data import pipeline
from jssl.data.sources import make_source
from jssl.evaluate import probe_splits

SMOKE = str(REPO / "configs" / "smoke.py")


def _png(path, value, size=16):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(value)
  Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _corrupt(path, seed=0):
  """Random bytes with an image's name."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(np.random.default_rng(seed).integers(0, 256, 200, dtype=np.uint8).tobytes())


def _gif(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  frames = [Image.fromarray(np.full((4, 4), value, np.uint8), "L") for _ in range(2)]
  frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)


def _pretrain(tmp_path, folder, *extra):
  workdir = tmp_path / "run"
  args = ["pretrain", "--config", SMOKE, "--workdir", str(workdir), f"--config.data.source=image_folder:{folder}"]
  return workdir, cli.main([*args, "--config.train.steps=1", "--config.train.batch_size=4", *extra])


@pytest.mark.parametrize("kind", ["image_folder", "video_folder"])
def test_folder_of_only_unreadable_files_is_refused_with_folder_and_count(kind, tmp_path):
  ext = "png" if kind == "image_folder" else "gif"
  for i, name in enumerate(["a/1", "a/2", "b/3"]):
    _corrupt(f"{tmp_path}/{name}.{ext}", seed=i)
  what = "image" if kind == "image_folder" else "clip"
  with pytest.raises(ValueError, match=rf"No readable {what}s in '{tmp_path}': all 3 .*unreadable") as error:
    make_source(f"{kind}:{tmp_path}", video_options={"clip_frames": 2, "clip_size": 4})
  assert "\n" not in str(error.value)


def test_split_of_only_unreadable_files_is_refused(tmp_path):
  _png(f"{tmp_path}/train/a/1.png", 1)
  _corrupt(f"{tmp_path}/test/a/2.png")
  with pytest.raises(ValueError, match=rf"No readable images in '{tmp_path / 'test'}': all 1 "):
    make_source(f"image_folder:{tmp_path}")


def test_pretrain_on_only_unreadable_images_fails_before_the_workdir_is_written(tmp_path, capsys):
  folder = tmp_path / "photos"
  for i in range(3):
    _corrupt(f"{folder}/x{i}.png", seed=i)
  workdir, code = _pretrain(tmp_path, folder)
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and str(folder) in err[0] and "all 3 " in err[0], err
  assert not workdir.exists() or not any(workdir.iterdir())


@pytest.mark.parametrize("kind", ["image_folder", "video_folder"])
def test_class_folder_of_only_unreadable_files_is_warned_about(kind, tmp_path, caplog):
  ext = "png" if kind == "image_folder" else "gif"
  write = _png if kind == "image_folder" else _gif
  write(f"{tmp_path}/cat/1.{ext}", 1)
  write(f"{tmp_path}/cat/2.{ext}", 2)
  _corrupt(f"{tmp_path}/dog/1.{ext}", seed=1)
  _corrupt(f"{tmp_path}/dog/2.{ext}", seed=2)
  with caplog.at_level(logging.WARNING, logger="jssl"):
    source = make_source(f"{kind}:{tmp_path}", video_options={"clip_frames": 2, "clip_size": 4})
  assert source.num_classes == 2  # the class keeps its label, so labels match other splits
  messages = [r.getMessage() for r in caplog.records if r.name == "jssl"]
  assert len(messages) == 1, messages
  assert "class folder" in messages[0] and os.path.join(str(tmp_path), "dog") in messages[0] and "all 2 " in messages[0]
  assert os.sep + "cat" not in messages[0]


def test_pipeline_reads_the_readable_classes_past_an_unreadable_class_folder(tmp_path, smoke_config):
  """The fast twin of the next test: the run's setup is made and its batches come."""
  for i in range(6):
    _png(f"{tmp_path}/cat/{i}.png", i)
  _corrupt(f"{tmp_path}/dog/0.png")
  smoke_config.data.source = f"image_folder:{tmp_path}"
  smoke_config.train.batch_size = 4
  setup = train.make_setup(smoke_config)
  assert setup.source.num_classes == 2 and setup.source.num_examples("train") == 7
  batches = pipeline.pretrain_dataset(
    setup.source, split="train", batch_size=4, host_example=setup.task.host_example, seed=0
  ).as_numpy_iterator()
  labels = np.concatenate([next(batches)["label"] for _ in range(3)])
  np.testing.assert_array_equal(labels, 0)  # 12 examples over 2 epochs: only cats


@pytest.mark.slow
def test_pretrain_proceeds_with_a_class_folder_of_only_unreadable_images(tmp_path, caplog):
  folder = tmp_path / "photos"
  for i in range(6):
    _png(f"{folder}/cat/{i}.png", i)
  _corrupt(f"{folder}/dog/0.png")
  with caplog.at_level(logging.WARNING, logger="jssl"):
    workdir, code = _pretrain(tmp_path, folder)
  assert code == 0
  assert (workdir / "config.json").exists()
  messages = [r.getMessage() for r in caplog.records if r.name == "jssl" and "class folder" in r.getMessage()]
  assert len(messages) == 1 and os.path.join(str(folder), "dog") in messages[0], messages


@pytest.fixture(scope="module")
def train_only_run(tmp_path_factory):
  """A finished (random-weight) run on a labelled image folder with no test split."""
  root = tmp_path_factory.mktemp("train_only")
  folder = root / "photos"
  for c in ("cat", "dog"):
    for i in range(4):
      _png(f"{folder}/{c}/{i}.png", i + (10 if c == "dog" else 0))
  config = load_config(SMOKE)
  config.data.source = f"image_folder:{folder}"
  config.train.batch_size = 4
  write_random_run(config, root / "run", steps=(1,))
  return root / "run", folder


def test_eval_without_the_test_split_names_the_splits_and_the_fix(train_only_run, capsys):
  workdir, folder = train_only_run
  assert cli.main(["eval", "--workdir", str(workdir)]) == 2
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.startswith("jssl eval: error:")]
  assert len(lines) == 1 and "Traceback" not in err, err
  assert "'test'" in lines[0] and "('train',)" in lines[0] and "--config.eval.split=" in lines[0], lines[0]
  assert not (workdir / "eval.json").exists()


def test_eval_split_override_is_accepted_and_names_the_split(train_only_run, capsys):
  """The fast twin of the next test: jssl eval takes --config.eval.split and checks it first."""
  workdir, _ = train_only_run
  assert cli.main(["eval", "--workdir", str(workdir), "--config.eval.split=val"]) == 2
  lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("jssl eval: error:")]
  assert len(lines) == 1 and "no 'val' split" in lines[0] and "--config.eval.split=train" in lines[0], lines


def test_probe_splits(tmp_path, smoke_config):
  for split in ("train", "val"):
    _png(f"{tmp_path}/{split}/a/0.png", 0)
  source = make_source(f"image_folder:{tmp_path}")
  with pytest.raises(ValueError, match=r"no 'test' split .*\('train', 'val'\).*--config.eval.split=val"):
    probe_splits(source, smoke_config)
  apply_overrides(smoke_config, ["--config.eval.split=val"])
  assert probe_splits(source, smoke_config) == ("train", "val")
  smoke_config.data.train_split = "all"
  with pytest.raises(ValueError, match=r"no 'all' split \(data.train_split\)"):
    probe_splits(source, smoke_config)


@pytest.mark.slow
def test_eval_split_chooses_the_split_to_score(train_only_run):
  workdir, folder = train_only_run
  assert cli.main(["eval", "--workdir", str(workdir), "--config.eval.split=train"]) == 0
  results = json.loads((workdir / "eval.json").read_text())
  assert results["num_test"] == 8 and 0 <= results["linear_top1"] <= 1


def test_reconstruction_task_without_the_eval_split_fails_before_the_workdir_is_written(tmp_path, capsys):
  """Tasks that make images score held-out images of data.eval_split during training."""
  folder = tmp_path / "photos"
  for i in range(4):
    _png(f"{folder}/{i}.png", i)
  workdir = tmp_path / "run"
  args = ["pretrain", "--config", f"{SMOKE}:colorization", "--workdir", str(workdir)]
  assert cli.main([*args, f"--config.data.source=image_folder:{folder}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "'test'" in err[0] and "('train',)" in err[0] and "data.eval_split" in err[0], err
  assert not workdir.exists() or not any(workdir.iterdir())
