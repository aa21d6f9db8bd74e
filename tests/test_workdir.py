"""`jssl.workdir` and `jssl.data.facts`: config.json holds the run's config and the facts of its
data, and those facts alone rebuild the state's shapes (export and eval need no training data)."""

import json

import jax
import pytest
from conftest import REPO

from jssl import config as config_lib
from jssl import train, workdir
from jssl.config import load_config
from jssl.data import facts as facts_lib
from jssl.errors import MissingError


def _shapes(tree):
  return jax.tree.map(lambda x: (x.shape, x.dtype), tree)


@pytest.mark.parametrize(
  "recipe, overrides",
  [
    ("smoke.py:deepcluster", {}),  # a pseudo-label per training image: the state counts examples
    ("smoke.py", {"augment.on": "device"}),  # the host ships source-sized images: the batch has their shape
    ("smoke.py:frame_order", {}),  # clips: the batch has the clip's frame count
  ],
)
def test_recorded_facts_give_the_state_the_data_gives(recipe, overrides):
  config = load_config(f"{REPO / 'configs' / recipe}")
  for key, value in overrides.items():
    config_lib.apply_override(config, key, value)
  from_data = train.make_setup(config)
  recorded = json.loads(json.dumps(facts_lib.record(from_data.source)))  # as config.json holds them
  from_facts = train.make_setup(config, source=facts_lib.source_from_facts(recorded))
  assert isinstance(from_facts.source, facts_lib.RecordedSource)
  assert _shapes(train.batch_spec(from_facts)) == _shapes(train.batch_spec(from_data))
  assert _shapes(train.abstract_state(from_facts)) == _shapes(train.abstract_state(from_data))
  assert (from_facts.total_steps, from_facts.steps_per_epoch) == (from_data.total_steps, from_data.steps_per_epoch)
  if config.task == "deepcluster":
    train_examples = recorded["num_examples"][config.data.train_split]
    assert train_examples == 256
    assert any(train_examples in x.shape for x in jax.tree.leaves(train.abstract_state(from_facts).extra))
  with pytest.raises(MissingError, match="recorded facts"):
    from_facts.source.dataset(config.data.train_split)


def test_config_json_keeps_the_config_and_the_data_facts_apart(tmp_path, smoke_config):
  setup = train.make_setup(smoke_config)
  workdir.write_run_config(tmp_path, smoke_config, setup.source)
  assert config_lib.to_json(workdir.read_run_config(tmp_path)) == config_lib.to_json(smoke_config)
  facts = workdir.read_data_facts(tmp_path)
  assert facts == facts_lib.record(setup.source)
  assert facts["num_examples"] == {"train": 256, "test": 64} and facts["image_shape"] == [16, 16, 3]
  assert workdir.read_run_record(tmp_path)["data_facts"] == facts
  assert isinstance(workdir.run_setup(tmp_path, smoke_config).source, facts_lib.RecordedSource)

  # A run from before the facts were recorded: its config alone, and its setup reads the data.
  (tmp_path / "config.json").write_text(config_lib.to_json(smoke_config))
  assert workdir.read_data_facts(tmp_path) is None
  assert config_lib.to_json(workdir.read_run_config(tmp_path)) == config_lib.to_json(smoke_config)
  assert workdir.run_setup(tmp_path, smoke_config).source.name == "synthetic"
  with pytest.raises(MissingError, match="config.json not found"):
    workdir.read_run_config(tmp_path / "elsewhere")


def test_incomplete_facts_are_refused():
  with pytest.raises(ValueError, match="lack num_examples"):
    facts_lib.source_from_facts({"source": "x", "num_classes": 2, "channels": 3, "image_shape": None, "splits": []})
