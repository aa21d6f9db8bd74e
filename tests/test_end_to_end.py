"""`jssl pretrain` then `jssl eval` on the smoke config, through the command line entry point."""

import json
import shutil

import pytest
from conftest import REPO

from jssl import cli
from jssl.workdir import read_metrics

SMOKE = str(REPO / "configs" / "smoke.py")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("smoke")
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir)]) == 0
  return workdir


def test_pretrain_writes_metrics_plots_and_checkpoints(smoke_run):
  metrics = read_metrics(smoke_run)
  assert [m["step"] for m in metrics] == list(range(1, 25)), "one line per step, no gaps or duplicates"
  for key in ("loss", "lr", "images_per_s", "probe_top1", "input_wait_fraction"):
    assert all(key in m for m in metrics), key
  for name in ("augmentations.png", "curves.png", "config.json"):
    assert (smoke_run / name).stat().st_size > 1000, name
  assert list((smoke_run / "tensorboard").iterdir()), "TensorBoard events written"
  assert 24 in [int(p.name) for p in (smoke_run / "checkpoints").iterdir() if p.name.isdigit()]


def test_pretraining_lowers_the_loss(smoke_run):
  losses = [m["loss"] for m in read_metrics(smoke_run)]
  first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
  assert last < first - 0.1, losses


def test_eval_writes_probe_results(smoke_run, capsys):
  assert cli.main(["eval", "--workdir", str(smoke_run)]) == 0
  results = json.loads((smoke_run / "eval.json").read_text())
  for key in (
    "linear_top1",
    "knn_k20_top1",
    "random_init_linear_top1",
    "random_init_knn_k20_top1",
    "raw_pixels_linear_top1",
    "raw_pixels_knn_k20_top1",
  ):
    assert 0.0 <= results[key] <= 1.0, key
  assert "knn_k200_top1" not in results  # configs/smoke.py asks for k=20 only
  for prefix in ("", "random_init_", "raw_pixels_"):
    # The probe reports what it chose and how its solver ended, from the smoke config's grid.
    assert results[prefix + "linear_l2"] in (1e-4, 1e-2)
    assert 1 <= results[prefix + "linear_iterations"] <= 200
    assert results[prefix + "linear_loss"] > 0 and isinstance(results[prefix + "linear_converged"], bool)
  assert results["step"] == 24 and results["num_test"] == 64
  assert "random init" in capsys.readouterr().out
  history = [json.loads(line) for line in (smoke_run / "eval_history.jsonl").read_text().splitlines()]
  assert history[-1]["step"] == 24 and history[-1]["linear_top1"] == results["linear_top1"]

  # Baselines off (an earlier checkpoint, say): the pretrained encoder's scores alone, the same ones.
  assert cli.main(["eval", "--workdir", str(smoke_run), "--step=16", "--config.eval.baselines=False"]) == 0
  earlier = json.loads((smoke_run / "eval.json").read_text())
  assert earlier["step"] == 16 and earlier["num_test"] == 64 and "linear_top1" in earlier
  assert not [key for key in earlier if key.startswith(("random_init_", "raw_pixels_"))], sorted(earlier)
  history = [json.loads(line) for line in (smoke_run / "eval_history.jsonl").read_text().splitlines()]
  assert [h["step"] for h in history[-2:]] == [24, 16]
  assert "random init" not in capsys.readouterr().out


@pytest.mark.slow  # fast cover: tests/test_eval_pictures.py draws the same pictures from given features
def test_eval_draws_its_pictures_through_the_cli(smoke_run, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(smoke_run, workdir)
  assert cli.main(["eval", "--workdir", str(workdir), "--config.eval.pictures=True"]) == 0
  assert "neighbours.png" in capsys.readouterr().out
  for name in ("neighbours.png", "embedding.png", "summary.png"):  # eval.pictures (on by default; off in smoke.py)
    assert (workdir / name).stat().st_size > 10_000, name


@pytest.mark.slow  # fast cover: tests/test_linear_eval.py (optimizer steps, crops, learns synthetic classes)
def test_eval_with_the_papers_protocol_says_so(smoke_run, tmp_path, capsys):
  """``--config.eval.protocol=paper``: the linear scores come from SGD on augmented images
  (jssl.linear_eval; one epoch here), eval.json names the protocol and how the probe ran."""
  workdir = tmp_path / "run"
  shutil.copytree(smoke_run, workdir)
  overrides = ["--config.eval.protocol=paper", "--config.eval.paper_epochs=1.0"]
  assert cli.main(["eval", "--workdir", str(workdir), *overrides]) == 0
  results = json.loads((workdir / "eval.json").read_text())
  assert results["protocol"] == "paper"
  for prefix in ("", "random_init_", "raw_pixels_"):
    assert 0.0 <= results[prefix + "linear_top1"] <= 1.0 and 0.0 <= results[prefix + "knn_k20_top1"] <= 1.0
    assert results[prefix + "linear_optimizer"] == "sgd_nesterov" and results[prefix + "linear_epochs"] == 1.0
    assert prefix + "linear_l2" not in results  # nothing of the converged probe
  assert "the papers' protocol" in capsys.readouterr().out


def test_rerun_on_finished_workdir_resumes_without_duplicating(smoke_run):
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(smoke_run)]) == 0
  assert [m["step"] for m in read_metrics(smoke_run)] == list(range(1, 25))


@pytest.mark.slow
def test_rerun_with_more_steps_continues_from_the_checkpoint(smoke_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(smoke_run, workdir)  # a finished 24-step run, checkpoint at 24
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), "--config.train.steps=26"]) == 0
  assert [m["step"] for m in read_metrics(workdir)] == list(range(1, 27))


def test_config_typo_is_reported_with_valid_keys(tmp_path, capsys):
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(tmp_path), "--config.train.setps=3"]) == 2
  err = capsys.readouterr().err
  assert "setps" in err and "steps" in err and "batch_size" in err


def test_unknown_dataset_is_reported(tmp_path, capsys):
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(tmp_path), "--config.data.source=mnist3d"]) == 2
  assert "mnist3d" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_with_device_augmentation(tmp_path):
  """augment.on=device through the command line: host ships uint8 images, the step augments,
  the preview shows the step's views, and the loss goes down as with host augmentation."""
  args = ["pretrain", "--config", SMOKE, "--workdir", str(tmp_path), "--config.augment.on=device"]
  assert cli.main(args) == 0
  losses = [m["loss"] for m in read_metrics(tmp_path)]
  assert len(losses) == 24
  assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1, losses
  assert (tmp_path / "augmentations.png").stat().st_size > 1000


def test_only_jssl_errors_become_one_line(tmp_path, monkeypatch, capsys):
  """A request that cannot work is one line and exit 2; --debug shows its traceback; any
  other exception (a bug, e.g. a shape error while tracing) keeps its traceback."""
  from jssl import train  # noqa: PLC0415  (the CLI imports it lazily too)
  from jssl.errors import ConfigError  # noqa: PLC0415

  args = ["pretrain", "--config", SMOKE, "--workdir", str(tmp_path), "--config.train.setps=3"]
  with pytest.raises(KeyError, match="setps"):
    cli.main([*args, "--debug"])

  def broken(config, workdir, **options):
    raise ValueError("shapes (3,) and (4,) do not match")

  monkeypatch.setattr(train, "pretrain", broken)
  with pytest.raises(ValueError, match="do not match"):
    cli.main(args[:-1])
  assert "error:" not in capsys.readouterr().err

  def refused(config, workdir, **options):
    raise ConfigError("train.steps=-5 must be positive")

  monkeypatch.setattr(train, "pretrain", refused)
  assert cli.main(args[:-1]) == 2
  assert capsys.readouterr().err.strip() == "jssl pretrain: error: train.steps=-5 must be positive"
