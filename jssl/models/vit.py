"""Vision Transformer encoders (Dosovitskiy et al. 2021) in Flax Linen.

Pre-LN blocks (``x + MHSA(LN(x))``, ``x + MLP(LN(x))``), a GELU MLP of 4x the width, a
learnable [CLS] token and learnable position embeddings; the features are the final
LayerNorm'd [CLS] token. There is no batch norm: the variables are ``{"params"}`` only.

Module and parameter names follow timm's ``VisionTransformer`` (``patch_embed/proj``,
``blocks_0/norm1``, ``blocks_0/attn/qkv`` ... ``norm``) so that weights map onto it by
name. As in big_vision, the position embeddings cover the patches only; the [CLS]
token, learned itself, needs none (timm's extra [CLS] slot would be a second learned
offset of the same vector).

The position embeddings are learned for the image size the model is initialised with (a
square grid of patches). Images of another size, e.g. multi-crop's small crops, work if
their sides are multiples of the patch size: the embeddings are resampled bicubically over
the patch grid for them (``resize_pos_embed``, timm's rule), in the graph, so gradients
reach the stored ones. At the initialisation size they are used as stored.

The forward pass is split where masked image modeling needs it::

  tokens = vit.apply(variables, images, method=ViT.embed)          # [B, N, D], positions added
  kept = jnp.take_along_axis(tokens, keep[..., None], axis=1)       # any subset, e.g. MAE's 25%
  out = vit.apply(variables, kept, train=True, method=ViT.encode_tokens)  # [B, 1 + M, D]

and ``vit(images) == encode_tokens(embed(images))[:, 0]``.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jssl.errors import ConfigError

# name: (width, depth, heads), as in the ViT and DeiT papers.
VARIANTS = {
  "vit_tiny": (192, 12, 3),
  "vit_small": (384, 12, 6),
  "vit_base": (768, 12, 12),
}

_DENSE_INIT = nn.initializers.xavier_uniform()
_EMBED_INIT = nn.initializers.truncated_normal(0.02)  # position embeddings and [CLS], as timm
# How ``pos_embed`` starts: "learned", timm's truncated normal; "sincos", MAE's fixed 2-D
# sine-cosine table (the task keeps it fixed: ``jssl.tasks.mae``).
POS_EMBED_INITS = ("learned", "sincos")
LN_EPS = 1e-6


def auto_patch_size(image_size: int) -> int:
  """Patch side for ``image_size`` px images when none is given: 4 up to 64 px (CIFAR-sized
  images give an 8x8 grid at 32 px), 16 above (the 14x14 grid of ViT-*/16 at 224 px)."""
  return 4 if image_size <= 64 else 16


def sincos_2d(dim: int, grid: tuple[int, int]) -> np.ndarray:
  """Fixed position embeddings ``[gh * gw, dim]`` float32 for a row-major patch grid (MAE's
  ``get_2d_sincos_pos_embed``): the first half of each vector encodes the column, the second
  the row, each as ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000^(-k / (dim / 4))``,
  ``k < dim / 4``. ``dim`` must be a multiple of 4."""
  if dim % 4:
    raise ConfigError(f"Sine-cosine position embeddings need a width divisible by 4, got {dim}.")
  omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
  rows, cols = np.meshgrid(np.arange(grid[0], dtype=np.float64), np.arange(grid[1], dtype=np.float64), indexing="ij")

  def encode(pos):
    angles = pos.reshape(-1)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

  return np.concatenate([encode(cols), encode(rows)], axis=1).astype(np.float32)


def _qkv_init(key, shape, dtype=jnp.float32):
  """Xavier-uniform for the fused ``[D, 3D]`` q/k/v kernel as if q, k and v were three
  ``[D, D]`` kernels (MoCo v3 / big_vision), not one ``[D, 3D]`` matrix."""
  fan_in, fan_out = shape[0], shape[1] // 3
  limit = math.sqrt(6 / (fan_in + fan_out))
  return jax.random.uniform(key, shape, dtype, -limit, limit)


def dense(features: int, *, dtype, name: str, kernel_init=_DENSE_INIT) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, kernel_init=kernel_init, bias_init=nn.initializers.zeros, name=name)


def resize_pos_embed(pos_embed: jax.Array, grid: tuple[int, int]) -> jax.Array:
  """Position embeddings ``[1, g * g, D]`` of a square ``g x g`` patch grid, resampled for a
  ``grid = (rows, cols)`` grid -> ``[1, rows * cols, D]`` (float32 if resampled), row-major
  like the patches.

  The rule is timm's ``resample_abs_pos_embed`` (bicubic, ``antialias=True``,
  ``align_corners=False``), done separably on each axis by ``jax.image.resize``: output cell
  ``i`` of ``n`` is centred at ``(i + 0.5) * g / n - 0.5`` on the stored grid and takes the
  Keys cubic (a = -0.5) of the distance, stretched by ``g / n`` when shrinking (anti-aliasing),
  with the weights of the cells inside the grid summed to 1. For ``grid == (g, g)`` the
  embedding itself is returned, with no resampling op. Embeddings of a non-square count
  (only hand-made: a ViT is initialised with square images) are taken as they are for a grid
  of that count and cannot be resampled.
  """
  tokens, dim = pos_embed.shape[1], pos_embed.shape[2]
  rows, cols = grid
  side = math.isqrt(tokens)
  if side * side != tokens:
    if rows * cols == tokens:
      return pos_embed
    raise ConfigError(
      f"The position embeddings hold {tokens} patches, not a square grid, so they cannot be "
      f"resampled for a {rows}x{cols} grid; use the image size the model was made for."
    )
  if (rows, cols) == (side, side):
    return pos_embed
  square = jnp.asarray(pos_embed, jnp.float32).reshape(side, side, dim)
  return jax.image.resize(square, (rows, cols, dim), method="bicubic", antialias=True).reshape(1, rows * cols, dim)


class PatchEmbed(nn.Module):
  """Non-overlapping ``patch_size`` patches, linearly embedded, plus position embeddings.

  ``images`` ``[B, H, W, C]`` -> tokens ``[B, (H / p) * (W / p), dim]`` in row-major patch
  order. The position embeddings ``pos_embed`` ``[1, N, dim]`` are sized by the images seen
  at init (the config's image size; square images only), a square grid of ``N`` patches.
  Images of another size (sides multiples of ``p``) get them bicubically resampled to their
  grid (``resize_pos_embed``, as DINO's multi-crop and timm do); the parameters do not change.
  """

  dim: int
  patch_size: int
  pos_embed_init: str = "learned"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images):
    p = self.patch_size
    _, height, width, _ = images.shape
    if height % p or width % p:
      raise ConfigError(
        f"Images of {height}x{width} px do not split into {p}x{p} patches; use an image size "
        f"that is a multiple of the patch size (model.patch_size={p})."
      )
    if self.is_initializing() and height != width:
      # A square grid is what tells the stored embeddings' layout when resampling them.
      raise ConfigError(f"A ViT is initialised with square images, got {height}x{width} px.")
    # A stride-p conv is the per-patch linear map; lecun-normal over its p*p*C inputs (big_vision).
    x = nn.Conv(
      self.dim,
      (p, p),
      strides=(p, p),
      padding="VALID",
      dtype=self.dtype,
      kernel_init=nn.initializers.lecun_normal(),
      bias_init=nn.initializers.zeros,
      name="proj",
    )(jnp.asarray(images, self.dtype))
    x = x.reshape(x.shape[0], -1, self.dim)
    # Made for this grid at init; afterwards the stored one, whatever the images' size.
    shape = (1, x.shape[1], self.dim)
    if self.has_variable("params", "pos_embed"):
      shape = self.get_variable("params", "pos_embed").shape
    if self.pos_embed_init not in POS_EMBED_INITS:
      raise ConfigError(f"pos_embed_init={self.pos_embed_init!r}: choose one of {', '.join(POS_EMBED_INITS)}.")
    side = math.isqrt(shape[1])
    init = _EMBED_INIT
    if self.pos_embed_init == "sincos":
      init = lambda key, shape, dtype=jnp.float32: jnp.asarray(sincos_2d(self.dim, (side, side)), dtype)[None]  # noqa: E731
    pos_embed = self.param("pos_embed", init, shape)
    return x + jnp.asarray(resize_pos_embed(pos_embed, (height // p, width // p)), self.dtype)


class Attention(nn.Module):
  """Multi-head self-attention with one fused q/k/v projection (softmax in float32).

  ``x`` ``[B, T, dim]`` -> ``[B, T, dim]``.
  """

  dim: int
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    batch, tokens, _ = x.shape
    head_dim = self.dim // self.num_heads
    qkv = dense(3 * self.dim, dtype=self.dtype, kernel_init=_qkv_init, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(batch, tokens, 3 * self.num_heads, head_dim), 3, axis=2)
    # [B, T, heads, head_dim]; jax's XLA attention takes the softmax in float32 whatever the dtype.
    y = jax.nn.dot_product_attention(q, k, v)
    return dense(self.dim, dtype=self.dtype, name="proj")(y.reshape(batch, tokens, self.dim))


class Mlp(nn.Module):
  """``Dense(hidden) -> GELU -> Dense(dim)``. GELU's tanh approximation (big_vision's and
  Flax's default): the exact erf form took ~7% of a ViT-Tiny step on CPU."""

  hidden_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    x = nn.gelu(dense(self.hidden_dim, dtype=self.dtype, name="fc1")(x), approximate=True)
    return dense(dim, dtype=self.dtype, name="fc2")(x)


class Block(nn.Module):
  """Pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

  dim: int
  num_heads: int
  mlp_ratio: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    norm = lambda name: nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name=name)  # noqa: E731
    x = x + Attention(self.dim, self.num_heads, dtype=self.dtype, name="attn")(norm("norm1")(x))
    return x + Mlp(self.dim * self.mlp_ratio, dtype=self.dtype, name="mlp")(norm("norm2")(x))


class ViT(nn.Module):
  """Vision Transformer returning the final LayerNorm'd [CLS] token.

  Attributes:
    dim: token width (``num_features``).
    depth: number of transformer blocks.
    num_heads: attention heads; must divide ``dim``.
    patch_size: side of the square patches; must divide the image sides.
    mlp_ratio: MLP hidden width over ``dim``.
    pos_embed_init: ``learned`` (truncated normal, timm's) or ``sincos`` (MAE's 2-D sine-cosine
      table, ``sincos_2d``; a task that wants it fixed keeps its updates at zero).
    dtype: compute dtype (parameters stay float32; attention softmax is float32).

  The variables are ``params``: ``patch_embed`` (``proj``, ``pos_embed``), ``cls_token``,
  ``blocks_0`` ... ``blocks_{depth-1}`` and ``norm``.
  """

  dim: int
  depth: int
  num_heads: int
  patch_size: int = 16
  mlp_ratio: int = 4
  pos_embed_init: str = "learned"
  dtype: Any = jnp.float32

  def setup(self):
    if self.dim % self.num_heads:
      raise ConfigError(f"ViT dim {self.dim} is not divisible by num_heads {self.num_heads}.")
    if self.patch_size < 1:
      raise ConfigError(f"ViT patch_size must be a positive integer, got {self.patch_size}.")
    self.patch_embed = PatchEmbed(self.dim, self.patch_size, pos_embed_init=self.pos_embed_init, dtype=self.dtype)
    self.cls_token = self.param("cls_token", _EMBED_INIT, (1, 1, self.dim))
    self.blocks = [Block(self.dim, self.num_heads, self.mlp_ratio, dtype=self.dtype) for _ in range(self.depth)]
    self.norm = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype)

  @property
  def num_features(self) -> int:
    return self.dim

  def embed(self, images):
    """``images`` ``[B, H, W, C]`` float in [0, 1] -> patch tokens ``[B, N, dim]`` (compute
    dtype) with position embeddings added; ``N = (H / patch_size) * (W / patch_size)``. Any
    ``H`` and ``W`` that are multiples of ``patch_size`` work: away from the init size the
    position embeddings are resampled (``resize_pos_embed``)."""
    return self.patch_embed(images)

  def encode_tokens(self, tokens, *, train: bool):
    """``tokens`` ``[B, M, dim]``: any subset of ``embed``'s tokens (positions already added)
    -> ``[B, 1 + M, dim]`` (compute dtype): the [CLS] token first, all final-LayerNorm'd."""
    del train  # No dropout or batch norm; kept so that every encoder part takes the same flags.
    cls = jnp.broadcast_to(jnp.asarray(self.cls_token, self.dtype), (tokens.shape[0], 1, self.dim))
    x = jnp.concatenate([cls, jnp.asarray(tokens, self.dtype)], axis=1)
    for block in self.blocks:
      x = block(x)
    return self.norm(x)

  def __call__(self, images, *, train: bool):
    """``images`` ``[B, H, W, C]`` float in [0, 1] -> features ``[B, dim]`` float32."""
    return self.encode_tokens(self.embed(images), train=train)[:, 0].astype(jnp.float32)


def vit(name: str, *, patch_size: int = 16, depth: int | None = None, dtype=jnp.float32) -> ViT:
  """A named ViT (``vit_tiny`` | ``vit_small`` | ``vit_base``) with ``patch_size`` patches;
  ``depth`` overrides the variant's 12 blocks (e.g. 2 for a seconds-long CPU run)."""
  dim, default_depth, heads = VARIANTS[name]
  depth = default_depth if depth is None else int(depth)
  if depth < 1:
    raise ConfigError(f"ViT depth must be at least 1, got {depth}.")
  return ViT(dim=dim, depth=depth, num_heads=heads, patch_size=int(patch_size), dtype=dtype)
