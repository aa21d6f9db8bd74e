"""DINO's networks (Caron et al. 2021): an encoder and the DINO head, run over multi-crop groups.

``DINOHead`` follows facebookresearch/dino ``vision_transformer.DINOHead``: an MLP (``num_layers``
Dense layers, GELU between them, batch norm after the hidden ones only with ``batch_norm``, the
reference's ``use_bn_in_head``) down to a ``bottleneck_dim`` embedding, L2 normalisation, then a
weight-normalised bias-free linear layer to ``out_dim`` logits (``WeightNormalizedDense``). The
MLP's kernels start from a normal with std 0.02 (the reference's ``trunc_normal_(std=.02)``,
whose bounds of +-2 are 100 standard deviations away, so it is a plain normal).

``DINONetwork`` is the reference's ``MultiCropWrapper``: each group of crops of one resolution
goes through the encoder in one pass (so batch norm in the encoder sees every crop of that
resolution at once), then the features of all groups go through the head in one pass.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.heads import MLPHead
from jssl.models.swav import l2_normalize

HEAD_INIT = nn.initializers.normal(0.02)  # the reference's trunc_normal_(std=.02) (bounds at +-100 std)


class WeightNormalizedDense(nn.Module):
  """``z [N, D]`` -> ``[N, out_dim]``: a bias-free linear layer whose weight is ``g * v / ||v||``
  per output unit (torch's ``weight_norm``), ``v`` the stored ``kernel`` ``[D, out_dim]``.

  With ``learn_scale=False`` (DINO's ``norm_last_layer=True``) ``g`` is fixed at 1: every output
  unit's weight vector (a column of the kernel) has unit length. The normalisation happens here,
  in the forward pass, so the stored kernel stays free and the optimizer's step is a plain one
  (as ``jssl.models.swav.Prototypes``); the gradient reaching it is the one torch's
  ``weight_norm`` gives ``weight_v``. With ``learn_scale=True`` a ``scale`` ``[out_dim]`` (``g``,
  starting at 1) is trained too. Computed in float32 whatever the model's dtype.
  """

  out_dim: int
  learn_scale: bool = False

  @nn.compact
  def __call__(self, z):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (z.shape[-1], self.out_dim), jnp.float32)
    weight = l2_normalize(kernel, axis=0)
    if self.learn_scale:
      weight = weight * self.param("scale", nn.initializers.ones, (self.out_dim,), jnp.float32)
    return jnp.dot(z.astype(jnp.float32), weight)


class DINOHead(nn.Module):
  """Features ``[N, F]`` -> ``(z [N, bottleneck_dim], logits [N, out_dim])``, ``z`` the
  L2-normalised bottleneck embedding, both float32.

  ``num_layers`` Dense layers ``F -> hidden -> ... -> bottleneck`` (one layer: ``F -> bottleneck``),
  GELU after each hidden one and, with ``batch_norm``, batch norm before it; then
  ``WeightNormalizedDense`` (``norm_last_layer``: its scale fixed at 1).
  """

  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  out_dim: int = 65536
  num_layers: int = 3
  batch_norm: bool = False
  norm_last_layer: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features, *, train: bool):
    x = MLPHead(
      hidden_dim=self.hidden_dim,
      out_dim=self.bottleneck_dim,
      num_layers=self.num_layers,
      hidden_norm=self.batch_norm,
      out_norm="none",
      activation="gelu",
      kernel_init=HEAD_INIT,
      dtype=self.dtype,
      name="mlp",
    )(features, train=train)
    z = l2_normalize(x)
    return z, WeightNormalizedDense(self.out_dim, learn_scale=not self.norm_last_layer, name="last_layer")(z)


class DINONetwork(nn.Module):
  """Encoder and DINO head over groups of crops, one group per resolution.

  ``groups``: example-major ``[B, V_g, S_g, S_g, C]`` arrays (e.g. the two global views, then
  the local crops). Each group goes through the encoder as one batch of ``B * V_g`` images;
  the features of every group then go through the head as one batch. Returns
  ``(features [B, V, F], z [B, V, bottleneck_dim], logits [B, V, out_dim])`` with
  ``V = sum V_g``, the crops in the order of the groups. Example-major layouts keep every
  reshape free under a batch-sharded ``jit`` (no example's crops leave its device).
  """

  encoder: nn.Module
  head: nn.Module

  def __call__(self, groups: Sequence[jax.Array], *, train: bool):
    batch = groups[0].shape[0]
    features = []
    for crops in groups:
      flat = self.encoder(crops.reshape((-1, *crops.shape[2:])), train=train)
      features.append(flat.reshape(batch, crops.shape[1], -1))
    features = jnp.concatenate(features, axis=1)  # [B, V, F]
    views = features.shape[1]
    z, logits = self.head(features.reshape(batch * views, -1), train=train)
    return features, z.reshape(batch, views, -1), logits.reshape(batch, views, -1)
