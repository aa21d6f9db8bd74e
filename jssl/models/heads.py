"""Heads that sit on top of an encoder."""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jssl.errors import ConfigError

OUT_NORMS = ("none", "bn", "bn_no_shift", "bn_no_affine")
ACTIVATIONS = {"relu": nn.relu, "gelu": lambda x: nn.gelu(x, approximate=False)}


class MLPHead(nn.Module):
  """The MLP heads of the view-based methods: (Dense -> BN? -> act) x (num_layers - 1), then
  Dense -> the output norm.

  ``hidden_norm``: batch norm after each hidden Dense (every method's projector; not DINO's
  head). ``out_norm``: after the last Dense, ``none`` (BYOL's projector and predictor,
  VICReg, Barlow Twins), ``bn`` (affine), ``bn_no_shift`` (SimCLR v2) or ``bn_no_affine``
  (SimSiam's projector, MoCo v3's projector and predictor). A Dense has a bias exactly when no
  batch norm follows it. BN as torch's (momentum 0.1 there, 0.9 here; eps 1e-5).
  ``activation``: ``relu`` or ``gelu`` (exact, torch's default). ``kernel_init``: the Dense
  kernels' initializer (flax's default, LeCun normal; DINO's head: normal with std 0.02).
  ``hidden_dim=0``: each hidden layer as wide as ``features`` (SimCLR's reference head: 512
  on ResNet-18, 2048 on ResNet-50).

  ``features`` ``[N, F]`` -> ``[N, out_dim]`` float32.
  """

  hidden_dim: int = 2048
  out_dim: int = 128
  num_layers: int = 2
  hidden_norm: bool = True
  out_norm: str = "none"
  activation: str = "relu"
  kernel_init: Callable = nn.linear.default_kernel_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features, *, train: bool):
    if self.num_layers < 1:
      raise ConfigError(f"{type(self).__name__} needs num_layers >= 1, got {self.num_layers}.")
    if self.out_norm not in OUT_NORMS:
      raise ConfigError(f"out_norm={self.out_norm!r}: choose one of {', '.join(OUT_NORMS)}.")
    if self.activation not in ACTIVATIONS:
      raise ConfigError(f"activation={self.activation!r}: choose one of {', '.join(ACTIVATIONS)}.")
    x = jnp.asarray(features, self.dtype)
    hidden_dim = self.hidden_dim or x.shape[-1]
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      norm = (self.out_norm != "none") if last else self.hidden_norm
      x = nn.Dense(
        self.out_dim if last else hidden_dim,
        use_bias=not norm,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        name=f"dense{i}",
      )(x)
      if norm:
        affine = not last or self.out_norm == "bn"
        x = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          epsilon=1e-5,
          use_bias=affine,
          use_scale=affine or self.out_norm == "bn_no_shift",
          dtype=self.dtype,
          name=f"bn{i}",
        )(x)
      if not last:
        x = ACTIVATIONS[self.activation](x)
    return x.astype(jnp.float32)


class ProjectionHead(MLPHead):
  """SimCLR v2 projection MLP: (Dense -> BN -> ReLU) x (num_layers - 1), then Dense -> BN.

  Dense layers have no bias (BN follows); the last BN has no shift, as in SimCLR v2.
  ``num_layers=2, hidden_dim=0, out_dim=128`` on ResNet-18 gives 512 -> 512 -> 128, the
  reference's shape (google-research/simclr: hidden layers as wide as the encoder's output).

  ``features`` ``[N, F]`` -> projections ``[N, out_dim]`` float32.
  """

  out_norm: str = "bn_no_shift"


class EncoderWithHead(nn.Module):
  """An encoder and a head on its features: images -> (features ``[N, F]``, head output).
  SimCLR's head is the projection MLP, RotNet's the rotation classifier."""

  encoder: nn.Module
  head: nn.Module

  def __call__(self, images, *, train: bool):
    features = self.encoder(images, train=train)
    return features, self.head(features, train=train)
