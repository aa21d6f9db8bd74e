"""ResNet encoders (He et al. 2016) in Flax Linen, with ImageNet and CIFAR stems.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1_0`` ... ``downsample_conv``)
so that exported weights map one-to-one onto ``torchvision.models.resnet*``.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

import jssl.models.conv as conv_lib
from jssl.errors import ConfigError

# SimCLR uses batch-norm decay 0.9; the small epsilon is torchvision's.
BN = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# Bias-free convolutions (BN follows each); kernel gradients as GEMMs on CPU (jssl.models.conv).
Conv = functools.partial(
  nn.Conv, use_bias=False, kernel_init=_CONV_INIT, conv_general_dilated=conv_lib.conv_general_dilated
)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(BN, use_running_average=not train, dtype=self.dtype)
    y = conv(self.filters, (3, 3), strides=self.strides, padding=1, name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.filters, (3, 3), padding=1, name="conv2")(y)
    # Zero-initialised last scale: each block starts as the identity, which helps large-batch training.
    y = norm(scale_init=nn.initializers.zeros, name="bn2")(y)
    if x.shape != y.shape:
      x = conv(self.filters, (1, 1), strides=self.strides, name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided, as torchvision's v1.5), 1x1 expand by 4."""

  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(BN, use_running_average=not train, dtype=self.dtype)
    y = nn.relu(norm(name="bn1")(conv(self.filters, (1, 1), name="conv1")(x)))
    y = conv(self.filters, (3, 3), strides=self.strides, padding=1, name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y))
    y = conv(self.filters * 4, (1, 1), name="conv3")(y)
    y = norm(scale_init=nn.initializers.zeros, name="bn3")(y)
    if x.shape != y.shape:
      x = conv(self.filters * 4, (1, 1), strides=self.strides, name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet trunk returning globally average-pooled features.

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block: ``"basic"`` or ``"bottleneck"``.
    width: channels of the first stage (64 in the paper); doubled at each stage.
    stem: ``"imagenet"`` (7x7 stride-2 conv + 3x3 stride-2 max-pool) or ``"cifar"``
      (3x3 stride-1 conv, no pool; for images of 64 px or less).
    dtype: compute dtype (parameters stay float32).
  """

  stage_sizes: Sequence[int]
  block: str = "basic"
  width: int = 64
  stem: str = "cifar"
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    expansion = 4 if self.block == "bottleneck" else 1
    return self.width * 2 ** (len(self.stage_sizes) - 1) * expansion

  @nn.compact
  def __call__(self, images, *, train: bool, return_maps: bool = False):
    """``images`` ``[N, H, W, C]`` float in [0, 1] -> features ``[N, num_features]`` float32.

    With ``return_maps`` also the feature maps a decoder's skip connections read, finest
    first: the stem's output (before max-pooling) and each stage's, e.g. ``[N, S, S, 16]``,
    ``[N, S, S, 16]``, ``[N, S/2, S/2, 32]``, ... for ``resnet_tiny`` with the CIFAR stem.
    """
    block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}.get(self.block)
    if block_cls is None:
      raise ConfigError(f"ResNet block must be 'basic' or 'bottleneck', got {self.block!r}.")
    x = jnp.asarray(images, self.dtype)
    if self.stem == "imagenet":
      x = Conv(self.width, (7, 7), strides=2, padding=3, dtype=self.dtype, name="conv1")(x)
      x = nn.relu(BN(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
      maps = [x]
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    elif self.stem == "cifar":
      x = Conv(self.width, (3, 3), padding=1, dtype=self.dtype, name="conv1")(x)
      x = nn.relu(BN(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
      maps = [x]
    else:
      raise ConfigError(f"ResNet stem must be 'imagenet' or 'cifar', got {self.stem!r}.")
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = block_cls(self.width * 2**i, strides=strides, dtype=self.dtype, name=f"layer{i + 1}_{j}")(x, train=train)
      maps.append(x)
    features = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    return (features, maps) if return_maps else features


STAGES = {
  "resnet_tiny": ((1, 1, 1, 1), "basic", 16),
  "resnet18": ((2, 2, 2, 2), "basic", 64),
  "resnet34": ((3, 4, 6, 3), "basic", 64),
  "resnet50": ((3, 4, 6, 3), "bottleneck", 64),
}


def resnet(name: str, *, width_multiplier: float = 1.0, stem: str = "cifar", dtype=jnp.float32) -> ResNet:
  """A named ResNet; ``resnet_tiny`` is one basic block per stage at width 16, for CPU runs."""
  stages, block, width = STAGES[name]
  return ResNet(stage_sizes=stages, block=block, width=max(1, round(width * width_multiplier)), stem=stem, dtype=dtype)
