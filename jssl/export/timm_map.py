"""jssl ViT variables in timm's ``VisionTransformer`` layout: key names, tensor layouts, and how
to build the timm model they load into (``jssl export --format torch`` of a ViT).

The exported ``state_dict`` is that of ``timm.create_model("vit_tiny_patch16_224",
num_classes=0, ...)`` (or ``vit_small``/``vit_base``), with no ``head``::

  cls_token                  [1, 1, D]
  pos_embed                  [1, 1 + N, D]    slot 0 (timm's [CLS] position) is zeros
  patch_embed.proj.weight    [D, C, p, p]     .bias [D]
  blocks.{i}.norm1.weight    [D]              .bias [D]
  blocks.{i}.attn.qkv.weight [3D, D]          .bias [3D]: q, k, v, each heads-major
  blocks.{i}.attn.proj.weight [D, D]          .bias [D]
  blocks.{i}.norm2.weight    [D]              .bias [D]
  blocks.{i}.mlp.fc1.weight  [4D, D]          .bias [4D]
  blocks.{i}.mlp.fc2.weight  [D, 4D]          .bias [D]
  norm.weight                [D]              .bias [D]

What jssl's ViT shares with timm's as built by ``timm_recipe``'s constructor: pre-LN blocks,
LayerNorm eps 1e-6, a fused q/k/v projection with biases, the ``1/sqrt(head_dim)`` attention
scale, an MLP of 4x the width, the final LayerNorm'd [CLS] token as the features
(``global_pool="token"``). What differs, and how the export bridges it:

* Position embeddings: jssl's cover the patches only (``[1, N, D]``); timm's standard ViT has
  one more slot, added to the [CLS] token. The export puts zeros there: the same function.
* GELU: jssl uses the tanh approximation, timm's default is the exact erf form (features
  differ by ~1e-3: 6e-4 measured for 2 blocks). Weights cannot carry this: the constructor
  passes ``act_layer="gelu_tanh"``.
* Image size: jssl resamples the position embeddings for images of another size; timm does
  so, by the same rule (bicubic, antialiased, [CLS] slot left out), only when built with
  ``dynamic_img_size=True``. The constructor builds it for ``input.image_size``.
"""

import re

import numpy as np

from jssl.errors import ConfigError
from jssl.export.layout import TORCH_FILE, flatten

# jssl variant -> the timm model of the same width, depth and heads (all three: patch 16, 224 px).
TIMM_MODELS = {
  "vit_tiny": "vit_tiny_patch16_224",
  "vit_small": "vit_small_patch16_224",
  "vit_base": "vit_base_patch16_224",
}
_BLOCK = re.compile(r"^blocks_(\d+)$")
_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias"}


def _torch_value(key: str, leaf: str, value: np.ndarray) -> np.ndarray:
  """Flax layout -> torch layout: conv ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]``, dense
  ``[in, out]`` -> ``[out, in]``; LayerNorm scales and biases as they are."""
  if leaf != "kernel":
    return value
  if value.ndim == 4:
    return value.transpose(3, 2, 0, 1)
  if value.ndim == 2:
    return value.T
  raise ConfigError(
    f"{key!r} has shape {value.shape}; a conv [kh, kw, in, out] or dense [in, out] kernel was expected."
  )


def timm_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """ViT encoder variables (``{"params": ...}`` of ``jssl.models.vit.ViT``) -> a timm
  ``VisionTransformer`` ``state_dict`` of float32 numpy arrays (names and shapes in the
  module docstring).

  The fused q/k/v kernel ``[D, 3D]`` is transposed alone: jssl splits its output as
  ``[3, heads, head_dim]``, as timm reshapes ``qkv(x)`` to ``[B, N, 3, heads, head_dim]``.
  """
  state = {}
  for key, value in flatten(variables).items():
    collection, *path = key.split("/")
    value = np.asarray(value, np.float32)
    if collection != "params":
      raise ConfigError(f"No timm name for {key!r}: a jssl ViT has params only.")
    if path == ["cls_token"]:
      state["cls_token"] = value
    elif path == ["patch_embed", "pos_embed"]:
      # timm adds pos_embed[:, 0] to the [CLS] token; jssl adds nothing.
      state["pos_embed"] = np.concatenate([np.zeros_like(value[:, :1]), value], axis=1)
    elif len(path) >= 2 and path[-1] in _LEAVES:
      *modules, leaf = path
      names = [f"blocks.{match[1]}" if (match := _BLOCK.match(m)) else m for m in modules]
      state[".".join([*names, _LEAVES[leaf]])] = _torch_value(key, leaf, value)
    else:
      raise ConfigError(f"No timm name for {key!r}: the timm layout covers jssl ViTs only.")
  return {name: np.ascontiguousarray(value) for name, value in sorted(state.items())}


def timm_recipe(name: str, *, patch_size: int, depth: int, image_size: int, channels: int) -> dict:
  """How to build the timm model that ``encoder.safetensors`` of a ``name`` ViT loads into
  (strictly: every key, no extras), and how to call it."""
  args = [
    f'"{TIMM_MODELS[name]}"',
    "pretrained=False",
    "num_classes=0",
    f"img_size={image_size}",
    f"patch_size={patch_size}",
    f"depth={depth}",
    *([f"in_chans={channels}"] if channels != 3 else []),
    'global_pool="token"',
    'act_layer="gelu_tanh"',
  ]
  return {
    "constructor": f"timm.create_model({', '.join(args)})",
    "load": f"model.load_state_dict(safetensors.torch.load_file('{TORCH_FILE}'))",
    "mode": "model.eval()",
    "input": f"float32 [N, C, H, W] (NCHW: images_nhwc.permute(0, 3, 1, 2)) in [0, 1], {image_size} px; "
    "no mean/std normalization (not timm's ImageNet data config)",
    "output": "[N, num_features]: the final LayerNorm'd [CLS] token (global_pool='token', no head)",
    "note": (
      "pos_embed's first slot (timm's [CLS] position) is zeros: jssl's position embeddings cover "
      "the patches only. act_layer='gelu_tanh' because jssl's MLP uses GELU's tanh approximation "
      "(timm's default, the exact GELU, moves the features by ~1e-3). Other image sizes (multiples of "
      "patch_size): add dynamic_img_size=True, which resamples pos_embed as jssl does."
    ),
  }
