"""SwAV's loss (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments"): online codes by Sinkhorn-Knopp and the swapped prediction of them.

Clustering methods need labels and must rule out the trivial solution of one cluster for
everything. SwAV assigns online, within the batch: ``sinkhorn`` turns prototype scores into
soft codes whose prototypes share the batch equally (an equipartition), and each view
predicts the code of another view of the same image (``swapped_prediction_loss``).
"""

import jax
import jax.numpy as jnp


def sinkhorn(scores: jax.Array, *, epsilon: float, iterations: int, axis_name=None) -> jax.Array:
  """SwAV's Sinkhorn-Knopp: prototype scores -> soft codes with equipartitioned prototypes.

  Solves, approximately, ``max_Q <Q, scores> + epsilon H(Q)`` over ``[B, K]`` matrices whose
  rows sum to 1 (each example is one unit of mass) and whose columns sum to ``B / K`` (each
  prototype takes an equal share of the batch), by alternately normalising the columns and
  rows of ``exp(scores / epsilon)``. The rows are normalised last, so they sum to 1 exactly
  and the columns to ``B / K`` up to the remaining error, which shrinks with ``iterations``.

  The codes are targets: no gradient flows through them. Subtracting the global maximum first
  changes nothing after normalisation but keeps ``exp`` finite; with cosine scores in [-1, 1]
  the smallest entry is ``exp(-2 / epsilon)`` (``4e-18`` at SwAV's 0.05), far from underflow.

  Args:
    scores: ``[B, K]`` float, the (global) batch's scores against the prototypes. Under
      ``jax.jit`` with a batch-sharded array the column sums are global automatically.
    epsilon: entropic regularisation (SwAV: 0.05).
    iterations: normalisation rounds (SwAV: 3).
    axis_name: inside ``shard_map``/``pmap`` with ``scores`` the local rows, the axis (or
      axes) to sum columns over; ``None`` for a global array.

  Returns:
    ``Q`` ``[B, K]`` float32, rows summing to 1.
  """
  if not epsilon > 0:
    raise ValueError(f"sinkhorn: epsilon must be > 0, got {epsilon}.")
  if iterations < 1:
    raise ValueError(f"sinkhorn: iterations must be >= 1, got {iterations}.")
  scores = jax.lax.stop_gradient(scores.astype(jnp.float32))

  def global_sum(x, axis=None):
    total = jnp.sum(x, axis=axis, keepdims=axis is not None)
    return total if axis_name is None else jax.lax.psum(total, axis_name)

  top = jnp.max(scores)
  if axis_name is not None:
    top = jax.lax.pmax(top, axis_name)
  q = jnp.exp((scores - top) / epsilon)
  batch = scores.shape[0] if axis_name is None else jax.lax.psum(scores.shape[0], axis_name)
  num_prototypes = scores.shape[1]
  q = q / global_sum(q)

  def normalise(_, q):
    q = q / global_sum(q, axis=0) / num_prototypes  # every prototype holds 1/K of the mass
    return q / jnp.sum(q, axis=1, keepdims=True) / batch  # every example holds 1/B

  q = jax.lax.fori_loop(0, iterations, normalise, q)
  return q * batch


def swapped_prediction_loss(
  scores: jax.Array, *, temperature: float, epsilon: float, iterations: int, assign_views: int = 2
) -> tuple[jax.Array, jax.Array]:
  """SwAV's loss for the views' prototype scores.

  Args:
    scores: ``[V, B, K]`` cosine scores of ``V`` views of the same ``B`` images (the first
      ``assign_views`` are the large views that give codes).
    temperature: softmax temperature of the predictions (SwAV: 0.1).
    epsilon, iterations: Sinkhorn's (SwAV: 0.05, 3).

  Returns:
    ``(loss, codes [assign_views, B, K])``.
  """
  views = scores.shape[0]
  if views < 2 or not 1 <= assign_views <= views:
    raise ValueError(
      f"swapped prediction needs >= 2 views and 1..{views} assigned views, got {views} views "
      f"and assign_views={assign_views}."
    )
  log_predictions = jax.nn.log_softmax(scores / temperature, axis=-1)  # [V, B, K]
  codes, total = [], 0.0
  for i in range(assign_views):
    q = sinkhorn(scores[i], epsilon=epsilon, iterations=iterations)
    others = jnp.concatenate([log_predictions[:i], log_predictions[i + 1 :]])  # [V - 1, B, K]
    total = total - jnp.mean(jnp.sum(q[None] * others, axis=-1))
    codes.append(q)
  return total / assign_views, jnp.stack(codes)
