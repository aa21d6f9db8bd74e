"""Gradient caching (Gao et al. 2021, "GradCache"): the full-batch contrastive gradient
from micro-batches, in the memory of one micro-batch.

A contrastive loss couples every example with every other, so plain gradient
accumulation (sum of per-micro-batch losses) changes the loss: its negatives would
be per micro-batch. Instead:

1. embed every micro-batch without keeping activations (forward only);
2. take the loss and its gradient w.r.t. the embeddings of the *whole* batch
   (embeddings are small: ``[B, D]``);
3. for each micro-batch again, recompute the forward pass and pull that embedding
   gradient back to the parameters (a VJP), summing over micro-batches.

The parameter gradient equals the full-batch gradient exactly (up to round-off) when
the embedding of an example does not depend on the other examples in its batch.
Batch norm breaks that: in this mode its statistics are per micro-batch.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def split_microbatches(x: jax.Array, count: int) -> jax.Array:
  """``[B, ...]`` -> ``[count, B / count, ...]``, micro-batch m holding rows m, m + count, ...

  Interleaved rather than contiguous so that with the batch sharded over devices, every
  device holds a share of every micro-batch (if its rows divide by ``count``).
  """
  if x.shape[0] % count:
    raise ValueError(
      f"a batch of {x.shape[0]} does not split into {count} micro-batches: the number of micro-batches "
      "must divide the batch size."
    )
  return jnp.swapaxes(x.reshape(x.shape[0] // count, count, *x.shape[1:]), 0, 1)


def merge_microbatches(x: jax.Array) -> jax.Array:
  """Inverse of ``split_microbatches``: ``[count, b, ...]`` -> ``[count * b, ...]``."""
  return jnp.swapaxes(x, 0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def grad_cache(embed: Callable, loss: Callable, params, carry, inputs: jax.Array, *, microbatches: int):
  """Loss and parameter gradient of ``loss(merge(embeddings))`` without the full-batch activations.

  Args:
    embed: ``(params, carry, x [b, ...]) -> (z [b, ...], aux, carry)``; ``carry`` is threaded
      through the micro-batches in order (e.g. batch-norm running statistics), ``aux`` is
      anything per-example to return (e.g. features for a probe).
    loss: ``z [B, ...] -> scalar``, over the whole batch.
    params: differentiated.
    carry: initial carry.
    inputs: ``[B, ...]``.
    microbatches: how many micro-batches; must divide B.

  Returns:
    ``(loss_value, grads, aux [B, ...], final_carry)``.
  """
  chunks = split_microbatches(inputs, microbatches)

  def embed_only(carry, x):
    z, aux, carry = embed(jax.lax.stop_gradient(params), carry, x)
    return carry, (z, aux)

  # Pass 1: embeddings only. The carry it produces is discarded; pass 2 recomputes it.
  _, (z, aux) = jax.lax.scan(embed_only, carry, chunks)
  loss_value, z_grad = jax.value_and_grad(loss)(merge_microbatches(z))
  z_grad = split_microbatches(z_grad, microbatches)

  def backprop_chunk(state, inputs):
    carry, grads = state
    x, g = inputs
    # Pass 2: recompute this micro-batch's forward pass and pull its share of dL/dz back.
    _, pullback, carry = jax.vjp(lambda p: _embedding_and_carry(embed, p, carry, x), params, has_aux=True)
    (chunk_grads,) = pullback(g)
    return (carry, jax.tree.map(jnp.add, grads, chunk_grads)), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  (carry, grads), _ = jax.lax.scan(backprop_chunk, (carry, zeros), (chunks, z_grad))
  return loss_value, grads, merge_microbatches(aux), carry


def _embedding_and_carry(embed, params, carry, x):
  z, _, new_carry = embed(params, carry, x)
  return z, new_carry
