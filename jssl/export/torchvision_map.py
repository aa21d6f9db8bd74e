"""jssl ResNet variables in torchvision's ResNet layout: key names, tensor layouts, and how
to build the torchvision model they load into (``jssl export --format torch``)."""

import re

import numpy as np

from jssl.errors import ConfigError
from jssl.export.layout import TORCH_FILE, flatten

_LAYER = re.compile(r"^layer(\d+)_(\d+)$")
_MODULES = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
_LEAVES = {
  ("params", "kernel"): "weight",
  ("params", "scale"): "weight",
  ("params", "bias"): "bias",
  ("batch_stats", "mean"): "running_mean",
  ("batch_stats", "var"): "running_var",
}


def _torch_module(flax_path: list[str]) -> str:
  parts = []
  for name in flax_path:
    match = _LAYER.match(name)
    parts.append(f"layer{match[1]}.{match[2]}" if match else _MODULES.get(name, name))
  return ".".join(parts)


def torch_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """ResNet encoder variables -> a torchvision-style ``state_dict`` of numpy arrays.

  Conv kernels go from Flax ``[kh, kw, in, out]`` to torch ``[out, in, kh, kw]``; BN
  ``scale``/``bias``/``mean``/``var`` become ``weight``/``bias``/``running_mean``/
  ``running_var``, plus ``num_batches_tracked`` (int64 0) for every BN layer.
  """
  state, batch_norms = {}, set()
  for key, value in flatten(variables).items():
    collection, *path, leaf = key.split("/")
    name = _LEAVES.get((collection, leaf))
    if name is None or not path:
      raise ConfigError(f"No torchvision name for {key!r}: torchvision's layout covers jssl ResNets only.")
    module = _torch_module(path)
    value = np.asarray(value, np.float32)
    if leaf == "kernel":
      if value.ndim != 4:
        raise ConfigError(f"{key!r} has shape {value.shape}; a conv kernel [kh, kw, in, out] was expected.")
      value = value.transpose(3, 2, 0, 1)
    else:
      batch_norms.add(module)
    state[f"{module}.{name}"] = np.ascontiguousarray(value)
  for module in batch_norms:
    state[f"{module}.num_batches_tracked"] = np.zeros((), np.int64)
  return dict(sorted(state.items()))


def torchvision_recipe(name: str, *, width_multiplier: float, stem: str) -> dict:
  """How to build a torchvision model that ``encoder.safetensors`` loads into."""
  from jssl.models.resnet import STAGES  # noqa: PLC0415

  stages, block, base_width = STAGES[name]
  width = max(1, round(base_width * width_multiplier))
  block_cls = "BasicBlock" if block == "basic" else "Bottleneck"
  standard = {"resnet18", "resnet34", "resnet50"}
  if width != 64:
    constructor = None
    note = (
      f"No torchvision constructor matches this encoder (first-stage width {width}; torchvision's "
      "ResNets have 64). The keys and layouts still follow torchvision's ResNet, for a ResNet class "
      "with that width."
    )
  else:
    constructor = (
      f"torchvision.models.{name}(weights=None)"
      if name in standard
      else f"torchvision.models.resnet.ResNet(torchvision.models.resnet.{block_cls}, {list(stages)})"
    )
    note = "Load into the constructor's model after the replacements in 'replace'."
  replace = {"fc": "torch.nn.Identity()"}
  if stem == "cifar":
    replace["conv1"] = f"torch.nn.Conv2d(3, {width}, kernel_size=3, stride=1, padding=1, bias=False)"
    replace["maxpool"] = "torch.nn.Identity()"
    note += (
      " CIFAR stem: conv1 is 3x3 stride 1 and there is no max-pool, so replace model.conv1 and "
      "model.maxpool as given (use in_channels=1 if input.channels is 1)."
    )
  return {
    "constructor": constructor,
    "replace": replace,
    "load": f"model.load_state_dict(safetensors.torch.load_file('{TORCH_FILE}'))",
    "mode": "model.eval() (batch norm uses the exported running statistics)",
    "input": "float32 [N, C, H, W] (NCHW: images_nhwc.permute(0, 3, 1, 2)) in [0, 1]; no mean/std normalization",
    "output": "[N, num_features] after global average pooling (with fc = Identity)",
    "note": note,
  }
