"""Frame-order model: a shared per-frame encoder and an MLP head on the concatenated frame
features that classifies the order (``jssl.tasks.frame_order``)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


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
  ``[B, n, F]`` float32, logits ``[B, K]``)."""

  encoder: nn.Module
  head: nn.Module

  def __call__(self, frames, *, train: bool):
    b, n = frames.shape[:2]
    # One encoder batch of all B * n frames: shared weights, and batch norm statistics over all of them.
    features = self.encoder(frames.reshape(b * n, *frames.shape[2:]), train=train).reshape(b, n, -1)
    return features, self.head(features.reshape(b, -1))
