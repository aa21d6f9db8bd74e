"""What the Barlow Twins and VICReg tests share: a smoke setup on one device, one call of the
task's ``loss_and_grads`` on a fixed batch, and the same embeddings computed here from the config
without the task's code (encoder and projector built anew, each view through them in turn).

Compilation dominates on CPU (the model's init alone takes ~15 s), so each test module makes
one ``LossCall`` and its tests share it; the optimisation test reuses its compiled loss."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import REPO

from jssl import parallel, train
from jssl.config import apply_overrides, load_config
from jssl.models import MLPHead, build_encoder


@dataclasses.dataclass
class LossCall:
  """One call of ``task.loss_and_grads`` and the embeddings recomputed by hand (float64)."""

  config: object
  setup: train.Setup
  variables: dict  # {"params", "batch_stats", "extra"} before the call
  batch: dict
  rng: jax.Array
  loss_and_grads: object  # the task's, jitted (compiled once, reused)
  loss: float
  batch_stats: dict  # returned by the task
  metrics: dict
  features: np.ndarray  # [B, F] returned by the task
  grads: dict
  z1: np.ndarray  # [B, D] by hand
  z2: np.ndarray
  features1: np.ndarray  # [B, F] by hand, view 1
  batch_stats_by_hand: dict  # after view 1 then view 2


def setup_for(task: str, overrides=()):
  """The smoke config of ``task`` with ``--config.X=V`` overrides, and its setup on one device."""
  config = load_config(f"{REPO / 'configs' / 'smoke.py'}:{task}")
  apply_overrides(config, list(overrides))
  return config, train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))


def fixed_batch(setup, seed: int = 0) -> dict:
  """A batch of ``train.batch_spec``'s shapes: floats (host-made views) uniform in [0, 1), labels."""
  rng = np.random.default_rng(seed)
  batch = {}
  for name, spec in train.batch_spec(setup).items():
    if jnp.issubdtype(spec.dtype, jnp.floating):
      batch[name] = jnp.asarray(rng.random(spec.shape), spec.dtype)
    else:
      batch[name] = jnp.asarray(rng.integers(0, 10, spec.shape), spec.dtype)
  return batch


def embed_by_hand(config, params, batch_stats, views):
  """``[(features, z)]`` per view and the running averages after all of them."""
  encoder = build_encoder(config)
  head = MLPHead(
    hidden_dim=config.model.head_hidden_dim,
    out_dim=config.model.head_out_dim,
    num_layers=config.model.head_layers,
    hidden_norm=True,
    out_norm="none",
  )
  outputs = []
  for view in views:
    features, encoder_stats = encoder.apply(
      {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}, view, train=True, mutable=["batch_stats"]
    )
    z, head_stats = head.apply(
      {"params": params["head"], "batch_stats": batch_stats["head"]}, features, train=True, mutable=["batch_stats"]
    )
    batch_stats = {"encoder": encoder_stats["batch_stats"], "head": head_stats["batch_stats"]}
    outputs.append((features, z))
  return outputs, batch_stats


def _float64(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))


def call_loss(task: str, overrides=()) -> LossCall:
  """The task's smoke config (with ``overrides``): init, one ``loss_and_grads`` at step 0, and
  the embeddings by hand (jitted: with the suite's unoptimised XLA build, one compile costs
  less than the layers' ops compiled one by one)."""
  config, setup = setup_for(task, overrides)
  batch = fixed_batch(setup)
  variables = jax.jit(setup.task.init)(jax.random.key(0), batch)
  variables = {"batch_stats": {}, "extra": {}, **variables}
  rng = jax.random.key(1)
  loss_and_grads = jax.jit(setup.task.loss_and_grads)
  (loss, (batch_stats, _, metrics, features)), grads = loss_and_grads(
    variables["params"], variables["batch_stats"], variables["extra"], batch, rng, jnp.zeros((), jnp.int32)
  )
  views = setup.task.views(batch, rng)
  assert len(views) == 2 and "view1" in batch  # host-made views: the same arrays by hand
  by_hand = jax.jit(lambda params, batch_stats, views: embed_by_hand(config, params, batch_stats, views))
  ((features1, z1), (_, z2)), stats = by_hand(variables["params"], variables["batch_stats"], views)
  return LossCall(
    config=config,
    setup=setup,
    variables=variables,
    batch=batch,
    rng=rng,
    loss_and_grads=loss_and_grads,
    loss=float(loss),
    batch_stats=_float64(batch_stats),
    metrics={k: float(v) for k, v in metrics.items()},
    features=_float64(features),
    grads=_float64(grads),
    z1=_float64(z1),
    z2=_float64(z2),
    features1=_float64(features1),
    batch_stats_by_hand=_float64(stats),
  )


def embedding_std(z: np.ndarray) -> float:
  """Mean over dimensions of the (biased) std over the batch of the L2-normalised rows."""
  return float(np.mean(np.std(z / np.linalg.norm(z, axis=1, keepdims=True), axis=0)))


def check_views_and_batch_norm(call: LossCall) -> None:
  """The task's features and running averages are those of the two views through the network
  one after the other (per-view batch statistics), as recomputed by hand."""
  np.testing.assert_allclose(call.features, call.features1, rtol=1e-5, atol=1e-5)
  assert jax.tree.structure(call.batch_stats) == jax.tree.structure(call.batch_stats_by_hand)
  for got, want in zip(jax.tree.leaves(call.batch_stats), jax.tree.leaves(call.batch_stats_by_hand)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  before = jax.tree.leaves(_float64(call.variables["batch_stats"]))
  assert any(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(call.batch_stats)))


def check_projector(call: LossCall) -> None:
  """Three Dense layers F -> hidden -> hidden -> out: batch norm after the hidden ones (so no
  bias there), a plain Dense with a bias at the end."""
  head = call.variables["params"]["head"]
  hidden, out = call.config.model.head_hidden_dim, call.config.model.head_out_dim
  features = call.setup.task.encoder.num_features
  assert sorted(head) == ["bn0", "bn1", "dense0", "dense1", "dense2"]
  assert [head[f"dense{i}"]["kernel"].shape for i in range(3)] == [(features, hidden), (hidden, hidden), (hidden, out)]
  assert "bias" not in head["dense0"] and "bias" not in head["dense1"] and head["dense2"]["bias"].shape == (out,)


def check_last_bias_gets_no_gradient(call: LossCall) -> None:
  """The loss does not depend on a shift of every embedding by one vector, so the projector's
  last bias (which the reference has not) gets a zero gradient, up to rounding."""
  last = call.grads["head"]["dense2"]
  bias, kernel = np.abs(last["bias"]), np.abs(last["kernel"])
  assert kernel.max() > 0
  assert bias.max() <= 1e-4 * kernel.max(), (bias.max(), kernel.max())


def losses_on_one_batch(call: LossCall, steps: int) -> list[float]:
  """The loss of ``steps`` updates by the run's optimizer (``setup.tx``: the task's routing
  included) on the call's fixed batch, from its initial variables."""
  tx = call.setup.tx

  @jax.jit
  def update(grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params, batch_stats, extra = (call.variables[k] for k in ("params", "batch_stats", "extra"))
  opt_state = tx.init(params)
  losses = []
  for step in range(steps):
    (loss, (batch_stats, extra, _, _)), grads = call.loss_and_grads(
      params, batch_stats, extra, call.batch, call.rng, jnp.asarray(step, jnp.int32)
    )
    losses.append(float(loss))
    params, opt_state = update(grads, opt_state, params)
  return losses
