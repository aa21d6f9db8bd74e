"""Barlow Twins (Zbontar et al. 2021): make the cross-correlation matrix of two views'
embeddings the identity.

Two augmented views of each image go through one encoder and a 3-layer projector
(``jssl.tasks.joint_embedding``: each view on its own, batch-norm statistics per view, global
over devices) to ``z1, z2 [B, D]``. Each dimension is standardised over the global batch and
``C = std(z1)^T std(z2) / B`` is their ``[D, D]`` cross-correlation; the loss

  scale_loss * ( sum_i (1 - C_ii)^2  +  lambd * sum_{i != j} C_ij^2 )

(``jssl.losses.barlow_twins``) pulls the diagonal to 1 (each dimension invariant to the
augmentations) and the rest to 0 (dimensions decorrelated: no redundancy, hence no
collapse, with neither negatives nor a target network). Metrics: ``on_diagonal`` and
``off_diagonal``, the two sums unweighted, and ``embedding_std`` (collapse monitor).

Learning rates: the reference trains with LARS at ``0.2 * B / 256`` for weights and
``0.0048 * B / 256`` for biases and batch-norm parameters (which LARS neither decays nor
adapts). ``optimizer`` multiplies the updates of those parameters (``jssl.optim.kernel_mask``
false) by ``barlow_twins.bias_lr_ratio`` (0.0048 / 0.2 = 0.024): with no weight decay on them
that is exactly their learning rate times the ratio, in LARS, SGD or AdamW. At 1.0 the run's
optimizer is used as it is.

No ``extra`` state, no schedules besides the learning rate; the encoder is what is exported.

Differences from the reference code (facebookresearch/barlowtwins ``main.py``):

* Loss scale: the current reference does not scale the loss (``lambd`` 0.0051); its early
  versions multiplied it by ``--scale-loss`` 1/32 with ``lambd`` 3.9e-3. ``scale_loss``
  defaults to 1.0, the current code; solo-learn's CIFAR recipe uses 0.1.
* The projector's last Dense has a bias (``MLPHead``'s plain output layer), the reference's
  none. The loss subtracts each dimension's batch mean before anything else, so it does not
  depend on that bias: its gradient is zero (up to rounding) and its value never matters.
* The learning rate decays to 0 (``jssl.optim``), the reference's to 0.001 of its peak.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl.errors import ConfigError
from jssl.losses import barlow_twins, embedding_std
from jssl.losses.barlow_twins import standardize
from jssl.losses.common import PRECISION
from jssl.optim import kernel_mask
from jssl.tasks.joint_embedding import JointEmbeddingTask


def correlation_terms(z_a: jax.Array, z_b: jax.Array) -> dict[str, jax.Array]:
  """The two sums of the Barlow Twins loss, unweighted, for logging (no gradient).

  ``z_a``, ``z_b`` ``[N, D]`` -> ``{"on_diagonal": sum_i (1 - C_ii)^2, "off_diagonal":
  sum_{i != j} C_ij^2}`` with ``C`` the cross-correlation of ``jssl.losses.barlow_twins``
  (so ``barlow_twins(z_a, z_b, lambd=l) == on_diagonal + l * off_diagonal``). Scalars, float32.
  """
  z_a, z_b = jax.lax.stop_gradient((z_a.astype(jnp.float32), z_b.astype(jnp.float32)))
  c = jnp.matmul(standardize(z_a).T, standardize(z_b), precision=PRECISION) / z_a.shape[0]
  diagonal = jnp.eye(c.shape[0], dtype=bool)
  return {
    "on_diagonal": jnp.sum(jnp.square(1.0 - jnp.diagonal(c))),
    "off_diagonal": jnp.sum(jnp.square(jnp.where(diagonal, 0.0, c))),
  }


class BarlowTwins(JointEmbeddingTask):
  """The Barlow Twins pretext task (batches: ``jssl.tasks.views.ViewTask``)."""

  name = "barlow_twins"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.lambd = 0.0051  # weight of the off-diagonal sum (reference code; the paper rounds it to 5e-3)
    c.scale_loss = 1.0  # multiplies the loss (current reference: none; an early version 1/32; solo-learn CIFAR 0.1)
    c.bias_lr_ratio = 0.024  # lr of biases and BN parameters / lr of weights (paper: 0.0048 / 0.2)
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.barlow_twins
    if not s.lambd >= 0:
      raise ConfigError(f"barlow_twins.lambd={s.lambd} must be >= 0 (the paper's 0.0051).")
    if not s.scale_loss > 0:
      raise ConfigError(f"barlow_twins.scale_loss={s.scale_loss} must be > 0 (1.0: the loss as it is).")
    if not s.bias_lr_ratio > 0:
      raise ConfigError(
        f"barlow_twins.bias_lr_ratio={s.bias_lr_ratio} must be > 0 (1.0: one learning rate for all parameters)."
      )

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """Returns ``loss, (new_batch_stats, extra, metrics, features)``; features ``[B, F]`` of view 1."""
    z1, z2, features, batch_stats = self.embed(params, batch_stats, batch, rng)
    loss = self.settings.scale_loss * barlow_twins(z1, z2, lambd=self.settings.lambd)
    metrics = {"embedding_std": embedding_std(z1), **correlation_terms(z1, z2)}
    return loss, (batch_stats, extra, metrics, features)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` for the kernels; ``tx`` with its update times ``bias_lr_ratio`` for the
    parameters that get no weight decay or trust ratio (biases, batch-norm scales and shifts)."""
    ratio = self.settings.bias_lr_ratio
    if ratio == 1.0:
      return tx

    def labels(params):
      return jax.tree.map(lambda kernel: "weights" if kernel else "biases", kernel_mask(params))

    return optax.multi_transform({"weights": tx, "biases": optax.chain(tx, optax.scale(ratio))}, labels)
