"""NT-Xent in bounded memory: blockwise (streaming) log-sum-exp, sharded over the batch.

``ntxent`` materialises the ``[2B, 2B]`` similarity matrix: at a global batch of 64k
that is 16 G floats. Here each device keeps only its own anchors (``2B / n`` rows),
gathers the L2-normalised embeddings of the whole batch (``2B x D``: small), and
streams over them in blocks of ``block_size`` keys with a running max and sum, so
the largest logits array is ``[2B / n, block_size]``. The block step is
rematerialised (``jax.checkpoint``), so the backward pass is bounded the same way.
Value and gradient equal ``ntxent``'s up to float32 round-off.
"""

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jssl.losses.ntxent import check_inputs, normalize

# Finite stand-in for -inf: masked logits vanish under exp() without inf - inf = NaN.
_MASKED = -1e30


def _anchor_losses(anchors, keys, anchor_index, positive_index, *, temperature: float, block_size: int):
  """Per-anchor ``lse_{k != i}(a_i . k / t) - a_i . k_pos(i) / t``.

  Args:
    anchors: ``[n, D]`` normalised; their global indices ``anchor_index`` ``[n]`` int32.
    keys: ``[N, D]`` normalised embeddings of all 2B views (global order).
    positive_index: ``[n]`` global index of each anchor's positive.
  Returns:
    ``[n]`` float32.
  """
  num_keys = keys.shape[0]
  block = min(block_size, num_keys)
  num_blocks = -(-num_keys // block)
  padded = jnp.pad(keys, ((0, num_blocks * block - num_keys), (0, 0)))
  blocks = padded.reshape(num_blocks, block, keys.shape[1])

  @jax.checkpoint
  def step(carry, inputs):
    running_max, running_sum = carry
    key_block, offset = inputs
    index = offset + jnp.arange(block)
    logits = anchors @ key_block.T / temperature  # [n, block]: the largest array there is
    valid = (index[None, :] < num_keys) & (index[None, :] != anchor_index[:, None])
    logits = jnp.where(valid, logits, _MASKED)
    new_max = jnp.maximum(running_max, jnp.max(logits, axis=1))
    new_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(jnp.exp(logits - new_max[:, None]), axis=1)
    return (new_max, new_sum), None

  # Built from the anchors so that, inside shard_map, the carry varies over devices like them.
  init = (jnp.full_like(anchors[:, 0], _MASKED), jnp.zeros_like(anchors[:, 0]))
  (running_max, running_sum), _ = jax.lax.scan(step, init, (blocks, jnp.arange(num_blocks) * block))
  positive = jnp.sum(anchors * keys[positive_index], axis=1) / temperature
  return running_max + jnp.log(running_sum) - positive


def ntxent_chunked(
  z_a: jax.Array, z_b: jax.Array, *, temperature: float = 0.1, block_size: int = 1024, mesh: Mesh | None = None
) -> jax.Array:
  """``ntxent`` (mean over all 2B anchors) without the ``[2B, 2B]`` matrix.

  Args:
    z_a, z_b: ``[B, D]`` projections of the two views (the global batch; under ``jit``
      sharded along ``mesh``'s ``data`` axis).
    temperature: tau > 0.
    block_size: keys per streamed block, any positive size (the last block is padded
      and masked). Per-device temporary memory is O(2B/n x block_size + 2B x D).
    mesh: shard the anchors over all its devices (every axis of the mesh, as the batch is) with
      ``jax.shard_map``;
      ``B`` must be divisible by its size. ``None``: one device computes all anchors, still blockwise.

  Returns:
    Scalar float32, equal to ``ntxent(z_a, z_b, temperature=temperature)``.
  """
  check_inputs(z_a, z_b, temperature)
  if block_size < 1:
    raise ValueError(f"ntxent_chunked: block_size must be >= 1, got {block_size}.")
  batch = z_a.shape[0]
  if mesh is None or mesh.devices.size == 1:
    keys = normalize(jnp.concatenate([z_a, z_b]))
    index = jnp.arange(2 * batch)
    positive = jnp.concatenate([jnp.arange(batch, 2 * batch), jnp.arange(batch)])
    return jnp.mean(_anchor_losses(keys, keys, index, positive, temperature=temperature, block_size=block_size))
  devices = mesh.devices.size
  if batch % devices:
    raise ValueError(f"ntxent_chunked: batch {batch} is not divisible by the {devices} devices of the mesh.")

  axes = tuple(mesh.axis_names)  # the batch is split over every device, so over every axis

  def local(za, zb):
    local_batch = za.shape[0]
    start = jax.lax.axis_index(axes) * local_batch
    # Only the embeddings travel (2B x D); autodiff turns the gather into a reduce-scatter.
    keys = normalize(
      jnp.concatenate([jax.lax.all_gather(za, axes, tiled=True), jax.lax.all_gather(zb, axes, tiled=True)])
    )
    rows = start + jnp.arange(local_batch)
    index = jnp.concatenate([rows, batch + rows])
    positive = jnp.concatenate([batch + rows, rows])
    anchors = normalize(jnp.concatenate([za, zb]))
    losses = _anchor_losses(anchors, keys, index, positive, temperature=temperature, block_size=block_size)
    return jax.lax.psum(jnp.sum(losses), axes) / (2 * batch)

  return jax.shard_map(local, mesh=mesh, in_specs=(P(axes), P(axes)), out_specs=P())(z_a, z_b)
