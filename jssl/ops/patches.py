"""Patches and random patch masks of MAE (He et al. 2021, "Masked Autoencoders Are Scalable
Vision Learners", arXiv:2111.06377); its loss is ``jssl.losses.mae``.

An image ``[B, H, W, C]`` is cut into ``N = (H / p) * (W / p)`` non-overlapping ``p x p``
patches in row-major order, each flattened to ``p * p * C`` values ordered (row, column,
channel) inside the patch: exactly the tokens ``jssl.models.vit.PatchEmbed`` embeds (its
stride-``p`` conv is ``patchify(images) @ kernel.reshape(p * p * C, dim)``).

A random mask hides ``N - M`` of the patches of each example, ``M = round(N * (1 - ratio))``
(at least 1); example ``b``'s mask is a random permutation keyed by ``fold_in(key,
indices[b])`` with ``indices`` its position in the global batch, so masks do not depend on
how the batch is sharded over devices.
"""

import functools

import jax
import jax.numpy as jnp


def patchify(images: jax.Array, patch: int) -> jax.Array:
  """``images [B, H, W, C]`` -> patches ``[B, (H / p) * (W / p), p * p * C]``, row-major patch
  order, each patch flattened (row, column, channel)."""
  b, h, w, c = images.shape
  if h % patch or w % patch:
    raise ValueError(f"{h}x{w} px images do not split into {patch}x{patch} patches.")
  x = images.reshape(b, h // patch, patch, w // patch, patch, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: jax.Array, patch: int, grid: tuple[int, int] | None = None) -> jax.Array:
  """Inverse of ``patchify``: ``[B, N, p * p * C]`` -> ``[B, gh * p, gw * p, C]``; ``grid``
  ``(gh, gw)`` patches high and wide, default square."""
  b, n, d = patches.shape
  if d % (patch * patch):
    raise ValueError(f"Patches of {d} values are not {patch}x{patch} px patches of whole channels.")
  c = d // (patch * patch)
  gh, gw = grid if grid is not None else (round(n**0.5),) * 2
  if gh * gw != n:
    raise ValueError(f"{n} patches do not make a {gh}x{gw} grid; pass grid=(rows, columns).")
  x = patches.reshape(b, gh, gw, patch, patch, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, gh * patch, gw * patch, c)


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """Patches left visible: ``round(N * (1 - mask_ratio))``, at least 1.

  Raises:
    ValueError: a ratio outside (0, 1), or one that leaves no patch masked.
  """
  if not 0.0 < mask_ratio < 1.0:
    raise ValueError(f"mae.mask_ratio must be in (0, 1) (the fraction of patches hidden), got {mask_ratio}.")
  kept = max(1, round(num_patches * (1.0 - mask_ratio)))
  if kept >= num_patches:
    raise ValueError(
      f"mae.mask_ratio={mask_ratio} hides none of the {num_patches} patches; raise it to at "
      f"least {1 / num_patches:.3g}."
    )
  return kept


@functools.partial(jax.jit, static_argnames=("num_patches", "mask_ratio"))
def random_masking(key: jax.Array, indices: jax.Array, *, num_patches: int, mask_ratio: float):
  """A random subset of patches to keep visible, per example.

  Args:
    key: PRNG key, the same on every device (the step's key).
    indices: int ``[B]``, the examples' positions in the global batch; example b's mask
      depends on ``fold_in(key, indices[b])`` alone.
    num_patches: ``N``, static.
    mask_ratio: fraction hidden, static; ``M = num_kept(N, mask_ratio)`` stay visible.

  Returns:
    ``(keep, mask, restore)``: ``keep`` int32 ``[B, M]``, the visible patches in increasing
    order; ``mask`` float32 ``[B, N]``, 1 where a patch is hidden; ``restore`` int32 ``[B, N]``
    with ``concat([visible, hidden], 1)[b, restore[b, n]]`` patch ``n``, for ``visible`` in
    ``keep``'s order and ``hidden`` in increasing patch order (MAE's ``ids_restore``).
  """
  kept = num_kept(num_patches, mask_ratio)

  def one(index):
    # A patch's rank in a random permutation: the first ``kept`` ranks stay visible.
    rank = jnp.argsort(jax.random.permutation(jax.random.fold_in(key, index), num_patches))
    return rank >= kept

  hidden = jax.vmap(one)(jnp.asarray(indices))
  # Visible patches first, then hidden ones, each in increasing order (a stable sort of 0s and 1s).
  order = jnp.argsort(hidden, axis=1, stable=True).astype(jnp.int32)
  restore = jnp.argsort(order, axis=1).astype(jnp.int32)
  return order[:, :kept], hidden.astype(jnp.float32), restore
