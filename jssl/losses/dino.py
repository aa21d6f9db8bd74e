"""DINO's self-distillation loss, teacher centring and collapse monitor (Caron et al. 2021,
"Emerging Properties in Self-Supervised Vision Transformers").

The student sees all crops, the teacher (an EMA of the student) only the global ones; each
student view predicts the teacher's sharpened, centred distribution of every *other* view.
Centring (subtracting a running mean of the teacher's logits) keeps one prototype from taking
over; sharpening (a low teacher temperature) keeps the distribution from going uniform. The
two balance: ``dino_teacher_entropy`` near ``log K`` means uniform collapse, near 0 one-hot.
"""

import numbers

import jax
import jax.numpy as jnp

from jssl.errors import ConfigError
from jssl.losses.common import PRECISION, as_float, check_positive


def centred_logits(teacher_logits: jax.Array, center: jax.Array, teacher_temperature) -> jax.Array:
  """``(teacher_logits - center) / teacher_temperature`` with no gradient to the teacher."""
  check_positive("dino teacher_temperature", teacher_temperature)
  teacher = jax.lax.stop_gradient(as_float(teacher_logits))
  center = jax.lax.stop_gradient(as_float(center))
  if center.shape not in ((teacher.shape[-1],), (1, teacher.shape[-1])):
    raise ValueError(f"dino: center must be [K] or [1, K] with K={teacher.shape[-1]}, got shape {center.shape}.")
  return (teacher - center.reshape(-1)) / teacher_temperature


def dino(
  student_logits: jax.Array,
  teacher_logits: jax.Array,
  center: jax.Array,
  *,
  student_temperature: float,
  teacher_temperature: float,
) -> jax.Array:
  """Mean over (teacher view, other student view) pairs of ``-sum_k q_k log p_k``, averaged over examples.

  ``q = softmax((teacher - center) / teacher_temperature)`` (no gradient flows to the teacher or
  the center) and ``log p = log_softmax(student / student_temperature)``. Teacher view ``iq`` is
  paired with every student view ``v != iq``: the student's first ``V_t`` views must be the same
  global crops as the teacher's, in the same order. That is ``V_t * V_s - V_t`` pairs, e.g. 2 *
  (2 + 10) - 2 = 22 with 2 global and 10 local crops.

  Follows facebookresearch/dino ``main_dino.py`` ``DINOLoss.forward`` (``total_loss /=
  n_loss_terms``). Deliberate differences: the center is not updated here (this is a pure
  function: the task calls ``dino_center_update`` with the same teacher logits), and the teacher
  temperature (warmed up by a schedule in the reference) is an argument, which may be traced.
  Pass the whole global batch (plain ``jnp``: under ``jax.jit`` with the batch sharded over
  devices the mean is global).

  Args:
    student_logits: ``[V_s, N, K]`` float (any float dtype), the global views first, then the
      local ones.
    teacher_logits: ``[V_t, N, K]`` float, the teacher's global views (``V_t`` = 2 usually).
    center: ``[K]`` or ``[1, K]`` running mean of the teacher's logits.
    student_temperature: > 0 (reference 0.1).
    teacher_temperature: > 0 (reference 0.04, warmed up to 0.07 by some recipes).

  Returns:
    Scalar, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  check_positive("dino student_temperature", student_temperature)
  if student_logits.ndim != 3 or teacher_logits.ndim != 3 or student_logits.shape[1:] != teacher_logits.shape[1:]:
    raise ValueError(
      f"dino: expected student [V_s, N, K] and teacher [V_t, N, K] logits, got {student_logits.shape} "
      f"and {teacher_logits.shape}."
    )
  student_views, teacher_views, batch = student_logits.shape[0], teacher_logits.shape[0], student_logits.shape[1]
  num_pairs = teacher_views * student_views - teacher_views
  if teacher_views < 1 or student_views < teacher_views or num_pairs < 1:
    raise ValueError(
      f"dino: need 1 <= V_t <= V_s and a student view other than each teacher view, got V_s={student_views} "
      f"and V_t={teacher_views}."
    )
  q = jax.nn.softmax(centred_logits(teacher_logits, center, teacher_temperature), axis=-1)  # [V_t, N, K]
  log_p = jax.nn.log_softmax(as_float(student_logits) / student_temperature, axis=-1)  # [V_s, N, K]
  # Cross-entropy of every (teacher view, student view) pair, averaged over the examples.
  cross_entropy = -jnp.einsum("tnk,snk->ts", q, log_p, precision=PRECISION) / batch  # [V_t, V_s]
  other_view = jnp.arange(teacher_views)[:, None] != jnp.arange(student_views)[None, :]
  return jnp.sum(jnp.where(other_view, cross_entropy, 0.0)) / num_pairs


def dino_center_update(center: jax.Array, teacher_logits: jax.Array, momentum: float) -> jax.Array:
  """``center * momentum + mean(teacher rows) * (1 - momentum)``, the EMA of the teacher's logits.

  The mean is over all ``V_t * N`` rows of ``[V_t, N, K]`` ``teacher_logits`` (any leading
  shape); pass the global batch (plain ``jnp``: global under ``jax.jit`` with a sharded batch,
  as the reference's all-reduce in ``DINOLoss.update_center``). No gradient flows.

  Args:
    center: ``[K]`` or ``[1, K]``; the result has its shape.
    teacher_logits: ``[..., K]`` float.
    momentum: in [0, 1] (reference 0.9).

  Returns:
    The new center, float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  if isinstance(momentum, numbers.Real) and not 0 <= momentum <= 1:
    raise ConfigError(f"dino center momentum must be in [0, 1], got {momentum}.")
  center = jax.lax.stop_gradient(as_float(center))
  teacher = jax.lax.stop_gradient(as_float(teacher_logits))
  if center.shape not in ((teacher.shape[-1],), (1, teacher.shape[-1])):
    raise ValueError(f"dino: center must be [K] or [1, K] with K={teacher.shape[-1]}, got shape {center.shape}.")
  batch_center = jnp.mean(teacher.reshape(-1, teacher.shape[-1]), axis=0)
  return center * momentum + batch_center.reshape(center.shape) * (1 - momentum)


def dino_teacher_entropy(teacher_logits: jax.Array, center: jax.Array, teacher_temperature: float) -> jax.Array:
  """Mean over the teacher's rows of the entropy ``-sum_k q_k log q_k`` of its distributions.

  ``q = softmax((teacher_logits - center) / teacher_temperature)``, the targets ``dino`` uses.
  A collapse monitor: ``log K`` for uniform targets, 0 for one-hot ones. No gradient flows.

  Args:
    teacher_logits: ``[..., K]`` float.
    center: ``[K]`` or ``[1, K]``.
    teacher_temperature: > 0.

  Returns:
    Scalar in [0, log K], float32 (float64 for float64 inputs under ``jax_enable_x64``).
  """
  log_q = jax.nn.log_softmax(centred_logits(teacher_logits, center, teacher_temperature), axis=-1)
  return jnp.mean(-jnp.sum(jnp.exp(log_q) * log_q, axis=-1))
