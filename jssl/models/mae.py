"""The masked autoencoder of MAE (He et al. 2021, arXiv:2111.06377): a ViT encoder that sees
only the visible patches and a light transformer decoder that predicts every patch's pixels.

``MAEModel(images, keep, restore)``:

1. ``encoder.embed(images)``: all ``N`` patch tokens with their position embeddings;
2. only the ``M`` visible ones (``keep``) go through ``encoder.encode_tokens``, which puts the
   [CLS] token first: ``[B, 1 + M, D]``. Its [CLS] output is the run's features;
3. the decoder maps them to its own width, appends one learned mask token per hidden patch,
   un-shuffles with ``restore`` so token ``n`` is patch ``n`` again, adds fixed 2D sine-cosine
   position embeddings (as MAE; the [CLS] slot gets zeros), runs a few pre-LN blocks
   (``jssl.models.vit.Block``), a LayerNorm and a linear map to ``p * p * C`` values per patch.

The encoder is the submodule ``encoder``, so its parameters are ``params["encoder"]``, the
same tree a SimCLR ViT has: export and evaluation take it unchanged. Nothing uses batch
norm: the variables are ``{"params"}`` only. The decoder exists only for pretraining.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.errors import ConfigError
from jssl.models.vit import LN_EPS, Block, dense, sincos_2d

_MASK_TOKEN_INIT = nn.initializers.normal(0.02)  # MAE's torch.nn.init.normal_(mask_token, std=.02)


class MAEDecoder(nn.Module):
  """Encoded visible tokens -> pixel predictions for every patch.

  Attributes:
    patch_size: side ``p`` of the square patches.
    dim, depth, num_heads: the decoder's width, blocks and attention heads.
    mlp_ratio: MLP hidden width over ``dim``.
    dtype: compute dtype (parameters float32; the prediction is returned in float32).
  """

  patch_size: int
  dim: int = 128
  depth: int = 2
  num_heads: int = 4
  mlp_ratio: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, encoded: jax.Array, restore: jax.Array, *, grid: tuple[int, int], channels: int) -> jax.Array:
    """``encoded [B, 1 + M, D_enc]`` ([CLS] first), ``restore`` int ``[B, N]`` (see
    ``jssl.ops.patches.random_masking``), ``grid`` ``(gh, gw)`` with ``gh * gw = N`` and the
    image's ``channels`` -> predicted patches ``[B, N, p * p * channels]`` float32."""
    batch, num_patches = restore.shape
    if num_patches != grid[0] * grid[1]:
      raise ConfigError(f"restore covers {num_patches} patches, not the {grid[0]}x{grid[1]} grid's.")
    x = dense(self.dim, dtype=self.dtype, name="embed")(encoded)
    cls, visible = x[:, :1], x[:, 1:]
    mask_token = jnp.asarray(self.param("mask_token", _MASK_TOKEN_INIT, (1, 1, self.dim)), self.dtype)
    hidden = jnp.broadcast_to(mask_token, (batch, num_patches - visible.shape[1], self.dim))
    # [visible..., mask tokens...] back into patch order: token n is patch n.
    x = jnp.take_along_axis(jnp.concatenate([visible, hidden], axis=1), restore[..., None], axis=1)
    x = jnp.concatenate([cls, x + jnp.asarray(sincos_2d(self.dim, grid), self.dtype)], axis=1)
    for i in range(self.depth):
      x = Block(self.dim, self.num_heads, self.mlp_ratio, dtype=self.dtype, name=f"blocks_{i}")(x)
    x = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="norm")(x)
    x = dense(self.patch_size * self.patch_size * channels, dtype=self.dtype, name="pred")(x)
    return x[:, 1:].astype(jnp.float32)  # the [CLS] slot predicts no patch


class MAEModel(nn.Module):
  """``(images [B, H, W, C], keep [B, M], restore [B, N])`` -> ``(features [B, D] float32,
  predicted patches [B, N, p * p * C] float32)``; ``encoder`` is a ``jssl.models.vit.ViT``."""

  encoder: nn.Module
  decoder: MAEDecoder

  def __call__(self, images, keep, restore, *, train: bool):
    tokens = self.encoder.embed(images)
    visible = jnp.take_along_axis(tokens, keep[..., None], axis=1)
    encoded = self.encoder.encode_tokens(visible, train=train)
    p = self.encoder.patch_size
    grid = (images.shape[1] // p, images.shape[2] // p)
    return encoded[:, 0].astype(jnp.float32), self.decoder(encoded, restore, grid=grid, channels=images.shape[-1])
