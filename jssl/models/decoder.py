"""Image-to-image models for the reconstruction tasks: a ResNet encoder with a light
U-Net decoder, and a small convolutional discriminator for adversarial losses.

The encoder is the same module SimCLR trains (``jssl.models.resnet``), so its
parameters export and evaluate exactly like a SimCLR encoder's; the decoder only
exists during pretraining.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.resnet import BN, Conv


def _upsample_to(x, height: int, width: int):
  """Bilinear resize of ``[N, h, w, C]`` to ``[N, height, width, C]`` (identity if equal)."""
  if x.shape[1:3] == (height, width):
    return x
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), "bilinear")


class UNetDecoder(nn.Module):
  """From the deepest feature map up to the image, joining each finer skip map on the way.

  Per skip map (deepest first): upsample to its resolution, concatenate, 3x3 conv + BN +
  ReLU with the skip map's channel count (so the decoder costs about as much as one pass
  of the encoder's narrowest layers). Then a 3x3 conv at full resolution and a 1x1 conv to
  ``out_channels``, zero-initialised: the untrained model outputs zeros, which tasks that
  predict a residual (super-resolution) turn into "start at the baseline".

  ``skips=False`` joins nothing: everything the decoder knows passes through the deepest map
  (a bottleneck, as the context encoder's; with skips, shallow features could fill a hole
  without the encoder understanding the image). The layers are the same otherwise.
  """

  out_channels: int | None = None  # None: ``channels`` of the call
  skips: bool = True  # False: the deepest map alone, upsampled stage by stage (a bottleneck)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, maps: Sequence[jax.Array], *, image_size: int, channels: int, train: bool):
    """``maps`` finest first (``ResNet(..., return_maps=True)``) -> ``[N, S, S, K]`` float32,
    ``K = out_channels or channels`` (the input image's channels)."""
    conv = functools.partial(Conv, dtype=self.dtype)
    norm = functools.partial(BN, use_running_average=not train, dtype=self.dtype)
    x = maps[-1]
    for i, skip in reversed(list(enumerate(maps[:-1]))):
      x = _upsample_to(x, *skip.shape[1:3])
      if self.skips:
        x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
      x = nn.relu(norm(name=f"bn{i}")(conv(skip.shape[-1], (3, 3), padding=1, name=f"conv{i}")(x)))
    x = _upsample_to(x, image_size, image_size)
    x = nn.relu(norm(name="bn_out")(conv(maps[0].shape[-1], (3, 3), padding=1, name="conv_out")(x)))
    x = nn.Conv(
      self.out_channels or channels, (1, 1), dtype=self.dtype, kernel_init=nn.initializers.zeros, name="predict"
    )(x)
    return x.astype(jnp.float32)


class EncoderDecoder(nn.Module):
  """``images [N, S, S, C] -> (features [N, F], output [N, S, S, out_channels])``."""

  encoder: nn.Module
  decoder: nn.Module

  def __call__(self, images, *, train: bool):
    features, maps = self.encoder(images, train=train, return_maps=True)
    return features, self.decoder(maps, image_size=images.shape[1], channels=images.shape[-1], train=train)


class Discriminator(nn.Module):
  """DCGAN-style critic: strided 3x3 convolutions with leaky ReLU, then one logit per image.

  No normalisation layers, so it has no running statistics and its output for an image
  does not depend on the rest of the batch (the real and fake batches are scored apart).
  """

  widths: Sequence[int] = (32, 64, 128)

  @nn.compact
  def __call__(self, images):
    """``[N, H, W, C]`` in [0, 1] -> logits ``[N]`` float32 (positive = "real")."""
    x = images * 2.0 - 1.0
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Conv(width, (3, 3), strides=2, padding=1, name=f"conv{i}")(x), 0.2)
    return nn.Dense(1, name="logit")(jnp.mean(x, axis=(1, 2)))[:, 0]
