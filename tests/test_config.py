"""Config files and typed command-line overrides."""

import pathlib

import pytest

from jssl import config as config_lib


def test_overrides_are_parsed_to_the_field_type(smoke_config):
  config_lib.apply_overrides(
    smoke_config,
    [
      "--config.train.batch_size=64",
      "--config.optim.base_lr",
      "0.5",
      "--config.data.grayscale_to_rgb=false",
      "--config.augment.crop_area=(0.2, 1.0)",
      "--config.data.source=x",
    ],
  )
  assert smoke_config.train.batch_size == 64 and isinstance(smoke_config.train.batch_size, int)
  assert smoke_config.optim.base_lr == 0.5
  assert smoke_config.data.grayscale_to_rgb is False
  assert tuple(smoke_config.augment.crop_area) == (0.2, 1.0)
  assert smoke_config.data.source == "x"


def test_unknown_key_names_the_valid_ones(smoke_config):
  with pytest.raises(KeyError, match="batch_size") as info:
    config_lib.apply_overrides(smoke_config, ["--config.train.batchsize=3"])
  assert "batchsize" in str(info.value)


def test_wrong_type_is_an_error(smoke_config):
  with pytest.raises(ValueError, match="int"):
    config_lib.apply_overrides(smoke_config, ["--config.train.batch_size=many"])


def test_missing_file_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="configs/"):
    config_lib.load_config(tmp_path / "nope.py")


def test_json_round_trip(smoke_config):
  restored = config_lib.from_json(config_lib.to_json(smoke_config))
  assert restored.train.batch_size == smoke_config.train.batch_size
  assert restored.model.encoder == smoke_config.model.encoder


def test_every_shipped_config_loads():
  import pathlib  # noqa: PLC0415

  for path in sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.py")):
    if path.name.startswith("_"):
      continue
    config = config_lib.load_config(path)
    section = config.finetune if path.name.startswith("finetune_") else config.train
    assert section.batch_size > 0, path


@pytest.mark.parametrize(
  "task, key, value",
  [
    ("rotation", "augment.jitter_strength", "0.2"),  # rotation reads only the crop and flip
    ("mae", "model.head_out_dim", "8"),  # MAE has no projection head
    ("frame_order", "augment.crop_area", "(0.5, 1.0)"),  # frame order crops with its own field
    ("simclr", "swav.num_prototypes", "10"),  # another task's section
    ("swav", "simclr.temperature", "0.2"),  # swav's temperature is swav.temperature
  ],
)
def test_a_field_the_task_ignores_is_an_error_naming_task_and_field(task, key, value):
  from jssl.errors import ConfigError  # noqa: PLC0415
  from jssl.tasks import check_fields  # noqa: PLC0415

  config = config_lib.default_config()
  config.task = task
  check_fields(config)  # the defaults are fine for every task
  config_lib.apply_overrides(config, [f"--config.{key}={value}"])
  with pytest.raises(ConfigError, match=rf"{key}=.*task {task} ignores it"):
    check_fields(config)


def test_fields_the_task_reads_may_be_set():
  from jssl.tasks import check_fields  # noqa: PLC0415

  config = config_lib.default_config()
  config_lib.apply_overrides(
    config, ["--config.augment.jitter_strength=0.2", "--config.model.head_out_dim=8", "--config.simclr.temperature=0.2"]
  )
  check_fields(config)
  config.task = "rotation"
  with config.unlocked():
    config.augment.jitter_strength = 0.5  # back to the default
    config.model.head_out_dim = 128
    config.simclr.temperature = 0.5
    config.augment.crop_area = [0.3, 1.0]  # a list, as JSON gives: compared as a tuple
  check_fields(config)


def test_the_cli_refuses_an_ignored_field_before_writing_the_workdir(tmp_path, capsys):
  from jssl import cli  # noqa: PLC0415

  smoke = str(pathlib.Path(__file__).parents[1] / "configs" / "smoke.py:rotation")
  workdir = tmp_path / "run"
  assert cli.main(["pretrain", "--config", smoke, "--workdir", str(workdir), "--config.model.head_layers=3"]) == 2
  assert "model.head_layers=3" in capsys.readouterr().err
  assert not workdir.exists()


def test_moved_fields_are_read_from_old_configs_and_named_in_overrides(smoke_config):
  import json  # noqa: PLC0415

  saved = json.loads(config_lib.to_json(smoke_config))
  del saved["simclr"]
  saved["loss"] = {"temperature": 0.3, "block_size": 64}  # a config.json written before the move
  saved["train"]["microbatches"] = 2
  restored = config_lib.from_json(json.dumps(saved))
  assert (restored.simclr.temperature, restored.simclr.block_size, restored.simclr.microbatches) == (0.3, 64, 2)
  assert "loss" not in restored
  with pytest.raises(KeyError, match="moved to --config.simclr.temperature"):
    config_lib.apply_overrides(smoke_config, ["--config.loss.temperature=0.1"])
