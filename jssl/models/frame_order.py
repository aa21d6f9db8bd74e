"""Frame-order model: a shared per-frame encoder and an MLP head on the concatenated frame
features that classifies the order (``jssl.tasks.frame_order``)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jssl.models.resnet import BN


class OrderHead(nn.Module):
  """MLP on the concatenated per-frame features: ``[B, n * F]`` -> logits ``[B, K]`` float32."""

  hidden_dim: int
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.hidden_dim, dtype=self.dtype, name="hidden")(jnp.asarray(x, self.dtype)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x).astype(jnp.float32)


class FrameOrderModel(nn.Module):
  """Shared per-frame encoder and the order head: frames ``[B, n, S, S, C]`` -> (features
  ``[B, n, F]`` float32, logits ``[B, K]``).

  ``spatial_channels`` > 0: the head reads each frame's last feature map (``[h, w, C]``, a
  ResNet's, before its global pooling) squeezed to that many channels by a 1x1 convolution,
  batch norm and ReLU, and flattened: features that keep where things are, which an order
  of moving objects is about (the paper's fc7 features keep spatial layout too). 0: the
  pooled features (``[F]``), which keep little of it.

  ``differences``: the head reads the differences of consecutive shown frames' features
  (``n - 1`` of them) instead of the features themselves: what the frames share (the
  object, its texture) cancels, and what changed between them is left, as in the
  pairwise feature differences of Lee et al.'s order prediction network (ICCV 2017).
  """

  encoder: nn.Module
  head: nn.Module
  spatial_channels: int = 0
  differences: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, frames, *, train: bool):
    b, n = frames.shape[:2]
    # One encoder batch of all B * n frames: shared weights, and batch norm statistics over all of them.
    flat = frames.reshape(b * n, *frames.shape[2:])
    if not self.spatial_channels:
      features = x = self.encoder(flat, train=train)
    else:
      features, maps = self.encoder(flat, train=train, return_maps=True)
      x = nn.Conv(self.spatial_channels, (1, 1), use_bias=False, dtype=self.dtype, name="squeeze")(maps[-1])
      x = nn.relu(BN(use_running_average=not train, dtype=self.dtype, name="squeeze_bn")(x))
    x = x.reshape(b, n, -1)
    if self.differences:
      x = x[:, 1:] - x[:, :-1]
    return features.reshape(b, n, -1), self.head(x.reshape(b, -1))
