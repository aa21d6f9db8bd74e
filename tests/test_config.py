"""Config files and typed command-line overrides."""

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
