"""The files of an export and the flat variable keys they share (see ``jssl.export``)."""

from collections.abc import Mapping
from typing import Any

from flax import traverse_util

from jssl.errors import ConfigError

FORMAT_VERSION = 1
FORMATS = ("orbax", "npz", "torch")
METADATA_FILE = "jssl_encoder.json"
ORBAX_DIR = "variables"
NPZ_FILE = "encoder.npz"
TORCH_FILE = "encoder.safetensors"
ARTIFACTS = (METADATA_FILE, ORBAX_DIR, NPZ_FILE, TORCH_FILE)  # every file an export may write
COLLECTIONS = ("params", "batch_stats")  # the encoder's variable collections that are exported
SEP = "/"


def as_dicts(tree: Mapping) -> dict:
  """``tree`` with every mapping (Flax ``FrozenDict``, Orbax metadata trees) as a plain ``dict``."""
  return {key: as_dicts(value) if isinstance(value, Mapping) else value for key, value in tree.items()}


def flatten(variables: Mapping) -> dict[str, Any]:
  """``{"params": {"conv1": {"kernel": x}}}`` -> ``{"params/conv1/kernel": x}``; empty sub-trees
  are left out. The key format of npz exports: files written before jssl used
  ``flax.traverse_util`` have the same keys."""
  tree = as_dicts(variables)
  # A "/" inside a name would give a key that unflattens to another tree.
  for path in traverse_util.flatten_dict(tree):
    for depth, name in enumerate(path):
      if SEP in str(name):
        raise ConfigError(f"Variable name {name!r} under {SEP.join(map(str, path[:depth]))!r} contains {SEP!r}.")
  return traverse_util.flatten_dict(tree, sep=SEP)


def unflatten(flat: Mapping[str, Any]) -> dict:
  """Inverse of ``flatten``."""
  return traverse_util.unflatten_dict(dict(flat), sep=SEP)
