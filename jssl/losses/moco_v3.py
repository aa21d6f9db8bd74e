"""MoCo v3's contrastive loss (Chen, Xie & He 2021, "An Empirical Study of Training
Self-Supervised Vision Transformers")."""

import jax
import jax.numpy as jnp

from jssl.losses.common import PRECISION, as_float, check_pair, check_positive, l2_normalize


def moco_v3(q: jax.Array, k: jax.Array, *, temperature: float) -> jax.Array:
  """InfoNCE of queries against the momentum encoder's keys, ``2 tau CE(q k^T / tau, arange(N))``.

  Row ``i`` of ``q`` (query: base encoder + predictor, one view) and row ``i`` of ``k`` (key:
  momentum encoder, the other view of the same image) are the positive pair; the other N - 1
  keys are the negatives. Both are L2-normalised here and ``k`` gets ``stop_gradient`` (the
  momentum encoder is an EMA of the base one). The cross-entropy is the mean over the N rows.

  Pass the whole *global* batch: written as plain ``jnp`` over ``[N, D]`` arrays, so under
  ``jax.jit`` with the batch sharded over devices XLA gathers the keys and the negatives are
  global, with correct gradients (no ``shard_map``/``psum`` needed).

  Follows facebookresearch/moco-v3 ``moco/builder.py`` ``MoCo.contrastive_loss``: normalise,
  gather all keys, ``CrossEntropyLoss()(q k^T / T, labels) * (2 * T)``; the reference then sums
  the two directions, ``loss(q1, k2) + loss(q2, k1)``, which the task does. No difference: the
  reference's per-GPU means, averaged by DDP's gradient all-reduce, are this global mean.

  Args:
    q: ``[N, D]`` float queries (any scale, any float dtype), N >= 2.
    k: ``[N, D]`` float keys.
    temperature: softmax temperature tau > 0 (the reference's commands: ``--moco-t`` default 1.0
      for ResNet-50, 0.2 for ViT).

  Returns:
    Scalar, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  check_pair("moco_v3", q, k, min_rows=2)
  check_positive("moco_v3 temperature", temperature)
  q = l2_normalize(as_float(q))
  k = l2_normalize(jax.lax.stop_gradient(as_float(k)))
  logits = jnp.matmul(q, k.T, precision=PRECISION) / temperature  # [N, N]
  # The label of row i is i: its positive logit is q_i . k_i / tau, the diagonal of the logits.
  positive = jnp.sum(q * k, axis=-1) / temperature  # [N]
  cross_entropy = jax.nn.logsumexp(logits, axis=-1) - positive
  return 2.0 * temperature * jnp.mean(cross_entropy)
