"""Heads that sit on top of an encoder."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jssl.errors import ConfigError


class ProjectionHead(nn.Module):
  """SimCLR v2 projection MLP: (Dense -> BN -> ReLU) x (num_layers - 1), then Dense -> BN.

  Dense layers have no bias (BN follows); the last BN has no shift, as in SimCLR v2.
  ``num_layers=2, hidden_dim=2048, out_dim=128`` on ResNet-18 gives 512 -> 2048 -> 128.

  ``features`` ``[N, F]`` -> projections ``[N, out_dim]`` float32.
  """

  hidden_dim: int = 2048
  out_dim: int = 128
  num_layers: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features, *, train: bool):
    if self.num_layers < 1:
      raise ConfigError(f"ProjectionHead needs num_layers >= 1, got {self.num_layers}.")
    x = jnp.asarray(features, self.dtype)
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      x = nn.Dense(self.out_dim if last else self.hidden_dim, use_bias=False, dtype=self.dtype, name=f"dense{i}")(x)
      x = nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, use_bias=not last, dtype=self.dtype, name=f"bn{i}"
      )(x)
      if not last:
        x = nn.relu(x)
    return x.astype(jnp.float32)


class EncoderWithHead(nn.Module):
  """An encoder and a head on its features: images -> (features ``[N, F]``, head output).
  SimCLR's head is the projection MLP, RotNet's the rotation classifier."""

  encoder: nn.Module
  head: nn.Module

  def __call__(self, images, *, train: bool):
    features = self.encoder(images, train=train)
    return features, self.head(features, train=train)
