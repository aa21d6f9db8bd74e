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


# ----------------------------------------------------------------------- validation of the values

# One value out of range for every field of config_lib.RULES (a new rule without one here fails
# test_every_rule_has_a_case).
BAD_VALUES = {
  "data.image_size": "0",
  "data.shuffle_buffer": "0",
  "model.width_multiplier": "0.0",
  "model.patch_size": "-4",
  "model.depth": "-1",
  "model.head_hidden_dim": "-1",
  "model.head_out_dim": "0",
  "model.head_layers": "0",
  "optim.base_lr": "0.0",
  "optim.warmup_epochs": "-1.0",
  "optim.weight_decay": "-1e-4",
  "optim.weight_decay_end": "-0.5",
  "optim.momentum": "1.0",
  "optim.trust_coefficient": "0.0",
  "optim.b1": "1.5",
  "optim.b2": "-0.1",
  "parallel.fsdp": "0",
  "parallel.fsdp_min_size": "-1",
  "parallel.devices": "-2",
  "train.batch_size": "0",
  "train.steps": "-5",
  "train.epochs": "0.0",
  "train.log_every": "0",
  "train.checkpoint_every_steps": "0",
  "train.keep_checkpoints": "0",
  "train.probe_lr": "nan",
  "train.max_consecutive_nonfinite": "0",
  "train.eval_every": "-1",
  "eval.batch_size": "0",
  "eval.linear_l2_grid": "(1e-4, -1.0)",
  "eval.linear_val_fraction": "0.0",
  "eval.linear_max_iter": "0",
  "eval.linear_tol": "0.0",
  "eval.knn_ks": "(20, 0)",
  "eval.protocol": "'linear'",
  "eval.paper_epochs": "0.0",
  "eval.paper_lr": "-0.1",
  "eval.knn_temperature": "0.0",
  "eval.max_train_examples": "-1",
  "eval.holdout_examples": "0",
  "eval.sample_images": "0",
  "simclr.temperature": "-0.5",
  "simclr.block_size": "-1",
  "simclr.microbatches": "0",
  "swav.num_prototypes": "1",
  "swav.temperature": "0.0",
  "swav.epsilon": "0.0",
  "swav.sinkhorn_iterations": "0",
  "swav.freeze_prototypes_steps": "-1",
  "deepcluster.num_clusters": "1",
  "deepcluster.kmeans_iterations": "0",
  "deepcluster.recluster_every_steps": "-1",
  "deepcluster.pca_dim": "-1",
  "mae.mask_ratio": "1.0",
  "mae.decoder_dim": "0",
  "mae.decoder_depth": "0",
  "mae.decoder_heads": "0",
  "rotation.head_hidden_dim": "0",
  "rotation.head_layers": "0",
  "colorization.grid": "0",
  "colorization.neighbours": "0",
  "colorization.sigma": "0.0",
  "colorization.rebalance_lambda": "1.5",
  "colorization.prior_momentum": "1.0",
  "colorization.temperature": "0.0",
  "superres.factor": "1",
  "inpainting.area_fraction": "0.0",
  "inpainting.max_rectangles": "0",
  "inpainting.reconstruction_weight": "-1.0",
  "inpainting.adversarial_weight": "-0.001",
  "inpainting.discriminator_widths": "(32, 0)",
  "inpainting.discriminator_lr": "0.0",
  "inpainting.discriminator_b1": "1.0",
  "frame_order.tuple_frames": "2",
  "frame_order.positive_fraction": "1.0",
  "frame_order.frame_gap": "-1",
  "frame_order.crop_area": "(0.5, 1.5)",
  "frame_order.crop_aspect": "(1.5, 0.5)",
  "frame_order.flip_prob": "2.0",
  "frame_order.head_hidden_dim": "0",
  "frame_order.head_input": "'sum'",
  "frame_order.window": "'random'",
  "finetune.init": "'imagenet'",
  "finetune.epochs": "0.0",
  "finetune.warmup_fraction": "1.0",
  "finetune.batch_size": "0",
  "finetune.lr": "-1e-3",
  "finetune.encoder_lr_multiplier": "-0.1",
  "finetune.weight_decay": "-1.0",
  "finetune.layer_decay": "1.5",
  "finetune.head_init": "'random'",
  "finetune.probe_examples": "-1",
  "finetune.crop_area": "(0.0, 1.0)",
  "finetune.log_every": "0",
  "finetune.eval_batch_size": "0",
}


def config_for(field: str):
  """A valid config that holds ``field``: finetune's, or pretrain's with the task whose section it is."""
  from jssl.tasks import TASKS  # noqa: PLC0415

  section = field.split(".")[0]
  if section == "finetune":
    return config_lib.finetune_config()
  config = config_lib.default_config()
  if section in TASKS:
    config.task = section
  return config


def test_every_rule_has_a_case_and_names_a_real_field():
  fields = [field for field, _, _ in config_lib.RULES]
  assert sorted(fields) == sorted(BAD_VALUES)
  pretrain, finetune = config_lib.default_config(), config_lib.finetune_config()
  for field in fields:
    node = finetune if field.startswith("finetune.") else pretrain
    for part in field.split("."):
      assert part in node, field  # a rule for a field that does not exist would never fire
      node = node[part]


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_each_rule_refuses_its_field_with_one_line_saying_what_to_use(field):
  from jssl.errors import ConfigError  # noqa: PLC0415

  config = config_for(field)
  config_lib.validate(config)  # the defaults pass
  config_lib.apply_overrides(config, [f"--config.{field}={BAD_VALUES[field]}"])
  with pytest.raises(ConfigError) as info:
    config_lib.validate(config)
  message = str(info.value)
  fix = {f: text for f, _, text in config_lib.RULES}[field]
  assert message.startswith(f"{field}=") and message.endswith(f": {fix}.") and "\n" not in message


@pytest.mark.parametrize(
  "overrides",
  [
    ["--config.train.steps=5", "--config.train.epochs=0.0"],  # epochs matter only with steps=0
    ["--config.optim.weight_decay_end=-1.0", "--config.optim.warmup_epochs=0.0", "--config.optim.weight_decay=0.0"],
    ["--config.eval.linear_val_fraction=0.0", "--config.eval.linear_l2_grid=(1e-4,)"],  # no grid to choose from
    ["--config.train.eval_every=0", "--config.eval.max_train_examples=0", "--config.model.depth=0"],
    [
      "--config.task=frame_order",
      "--config.frame_order.mode=permutation",
      "--config.frame_order.positive_fraction=1.0",
    ],
  ],
)
def test_the_edges_of_the_rules_are_accepted(overrides):
  config = config_lib.default_config()
  config_lib.apply_overrides(config, overrides)
  config_lib.validate(config)


@pytest.mark.parametrize(
  "override, start",
  [
    ("--config.augment.flip_prob=1.5", "augment: AugmentConfig.flip_prob must be in [0, 1]"),
    ("--config.augment.view2.blur_prob=2.0", "augment.view2: AugmentConfig.blur_prob must be in [0, 1]"),
    ("--config.augment.crop_area=(0.0, 1.0)", "augment: AugmentConfig.crop_area must satisfy"),
  ],
)
def test_the_augment_section_is_checked_by_its_own_code(override, start):
  from jssl.errors import ConfigError  # noqa: PLC0415

  config = config_lib.default_config()
  config_lib.apply_overrides(config, [override])
  with pytest.raises(ConfigError) as info:
    config_lib.validate(config)
  assert str(info.value).startswith(start)


def test_a_field_the_task_ignores_is_named_before_its_range():
  from jssl.errors import ConfigError  # noqa: PLC0415

  config = config_lib.default_config()  # simclr
  config_lib.apply_overrides(config, ["--config.swav.temperature=-1.0"])
  with pytest.raises(ConfigError, match=r"^swav.temperature=-1.0 is set, but task simclr ignores it"):
    config_lib.validate(config)


def shipped_recipes() -> list[str]:
  """Every recipe in configs/, and every FILE.py:TASK the files offer."""
  import importlib.util  # noqa: PLC0415

  from jssl.tasks import TASKS  # noqa: PLC0415
  from jssl.tasks.reconstruction import ReconstructionTask  # noqa: PLC0415

  configs = pathlib.Path(__file__).parents[1] / "configs"
  recipes = [str(path) for path in sorted(configs.glob("*.py")) if not path.name.startswith("_")]
  recipes += [f"{configs}/smoke.py:{task}" for task in TASKS]
  spec = importlib.util.spec_from_file_location("pretext_cpu_recipes", configs / "pretext_cpu.py")
  pretext = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(pretext)
  recipes += [f"{configs}/pretext_cpu.py:{task}" for task in pretext.TASKS]
  recipes += [f"{configs}/reconstruction_cpu.py:{t}" for t, cls in TASKS.items() if issubclass(cls, ReconstructionTask)]
  return recipes


def test_every_shipped_recipe_passes_validation():
  recipes = shipped_recipes()
  assert len(recipes) >= 8 + 9 + 6 + 3
  for recipe in recipes:
    config_lib.validate(config_lib.load_config(recipe))


def test_the_cli_refuses_negative_steps_before_writing_the_workdir(tmp_path, capsys):
  from jssl import cli  # noqa: PLC0415

  smoke = str(pathlib.Path(__file__).parents[1] / "configs" / "smoke.py")
  workdir = tmp_path / "run"
  assert cli.main(["pretrain", "--config", smoke, "--workdir", str(workdir), "--config.train.steps=-5"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.splitlines() == [
    "jssl pretrain: error: train.steps=-5: use a positive step count, or 0 to train for train.epochs."
  ]
  assert not workdir.exists()


def test_the_cli_refuses_a_bad_finetune_value_before_reading_the_encoder(tmp_path, capsys):
  from jssl import cli  # noqa: PLC0415

  recipe = str(pathlib.Path(__file__).parents[1] / "configs" / "finetune_fashion_mnist.py")
  args = ["finetune", "--encoder", str(tmp_path / "no_export"), "--config", recipe, "--config.finetune.lr=0.0"]
  assert cli.main(args) == 2
  assert capsys.readouterr().err.startswith("jssl finetune: error: finetune.lr=0.0: use a positive learning rate.")


def test_an_argument_for_a_get_config_that_takes_none_is_one_line(tmp_path):
  from jssl.errors import ConfigError  # noqa: PLC0415

  recipe = pathlib.Path(__file__).parents[1] / "configs" / "simclr_cifar10.py"
  with pytest.raises(ConfigError) as info:
    config_lib.load_config(f"{recipe}:swav")
  assert str(info.value).splitlines() == [
    f"{recipe}:swav: the get_config() of {recipe} takes no argument; drop ':swav' (--config {recipe})."
  ]


def test_a_get_config_that_needs_an_argument_says_how_to_pass_it(tmp_path):
  from jssl.errors import ConfigError  # noqa: PLC0415

  recipe = tmp_path / "per_task.py"
  recipe.write_text("def get_config(task):\n  raise AssertionError('not called')\n")
  with pytest.raises(ConfigError) as info:
    config_lib.load_config(recipe)
  assert str(info.value).splitlines() == [
    f"{recipe}: its get_config(task) needs an argument; pass it as --config {recipe}:ARG."
  ]


def test_a_get_config_that_returns_no_configdict_is_one_line(tmp_path):
  from jssl.errors import ConfigError  # noqa: PLC0415

  recipe = tmp_path / "plain_dict.py"
  recipe.write_text("def get_config():\n  return {'task': 'simclr'}\n")
  with pytest.raises(ConfigError) as info:
    config_lib.load_config(recipe)
  assert str(info.value).splitlines() == [
    f"{recipe}: get_config() returned a dict, not an ml_collections.ConfigDict; return one, e.g. "
    "jssl.config.default_config() with your changes."
  ]


def test_eval_checks_only_the_eval_settings_it_may_change():
  from jssl.errors import ConfigError  # noqa: PLC0415

  config = config_lib.default_config()
  config.simclr.temperature = -1.0  # a finished run's other sections are not judged again here
  config_lib.validate(config, only=("eval",))
  config.eval.knn_ks = (0,)
  with pytest.raises(ConfigError, match=r"eval.knn_ks=\(0,\): give neighbour counts >= 1"):
    config_lib.validate(config, only=("eval",))
