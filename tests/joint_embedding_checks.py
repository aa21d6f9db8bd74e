"""What the Barlow Twins and VICReg tests share: a smoke setup on one device, one step of the
task's loss on a random batch, and the same embeddings computed here from the config without
the task's code (encoder and projector built anew, each view through them in turn)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from conftest import REPO

from benchmarks.random_batch import random_batch
from jssl import parallel, train
from jssl.config import apply_overrides, load_config
from jssl.models import MLPHead, build_encoder


@dataclasses.dataclass
class LossCall:
  """One call of ``task.loss`` and the embeddings recomputed by hand, as float64 NumPy."""

  config: object
  setup: train.Setup
  state: train.TrainState
  batch: dict
  rng: jax.Array
  loss: float
  batch_stats: dict  # returned by the task
  metrics: dict
  features: np.ndarray  # [B, F] returned by the task
  z1: np.ndarray  # [B, D] by hand
  z2: np.ndarray
  features1: np.ndarray  # [B, F] by hand, view 1
  batch_stats_by_hand: dict  # after view 1 then view 2


def setup_for(task: str, overrides=()):
  """The smoke config of ``task`` with ``--config.X=V`` overrides, and its setup on one device."""
  config = load_config(f"{REPO / 'configs' / 'smoke.py'}:{task}")
  apply_overrides(config, list(overrides))
  return config, train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))


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


def call_loss(task: str, overrides=()) -> LossCall:
  config, setup = setup_for(task, overrides)
  state = train.create_state(setup, seed=0)
  batch = random_batch(setup, jax.random.key(0))
  rng = jax.random.key(1)
  loss, (batch_stats, _, metrics, features) = jax.jit(setup.task.loss)(
    state.params, state.batch_stats, state.extra, batch, rng, jnp.zeros((), jnp.int32)
  )
  views = setup.task.views(batch, rng)
  assert len(views) == 2 and "view1" in batch  # host-made views: the same arrays by hand
  ((features1, z1), (_, z2)), stats = jax.jit(lambda p, b, v: embed_by_hand(config, p, b, v))(
    state.params, state.batch_stats, views
  )
  f64 = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))  # noqa: E731
  return LossCall(
    config=config,
    setup=setup,
    state=state,
    batch=batch,
    rng=rng,
    loss=float(loss),
    batch_stats=f64(batch_stats),
    metrics={k: float(v) for k, v in metrics.items()},
    features=f64(features),
    z1=f64(z1),
    z2=f64(z2),
    features1=f64(features1),
    batch_stats_by_hand=f64(stats),
  )


def embedding_std(z: np.ndarray) -> float:
  """Mean over dimensions of the (biased) std over the batch of the L2-normalised rows."""
  return float(np.mean(np.std(z / np.linalg.norm(z, axis=1, keepdims=True), axis=0)))


def check_views_and_batch_norm(call: LossCall) -> None:
  """The task's features and running averages are those of the two views through the network
  one after the other (per-view batch statistics), as recomputed by hand."""
  np.testing.assert_allclose(call.features, call.features1, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(call.batch_stats), jax.tree.leaves(call.batch_stats_by_hand)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert jax.tree.structure(call.batch_stats) == jax.tree.structure(call.batch_stats_by_hand)
  before = jax.tree.leaves(jax.device_get(call.state.batch_stats))
  assert any(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(call.batch_stats)))


def check_projector(call: LossCall) -> None:
  """Three Dense layers F -> hidden -> hidden -> out: batch norm after the hidden ones (so no
  bias there), a plain Dense with a bias at the end."""
  head = call.state.params["head"]
  hidden, out = call.config.model.head_hidden_dim, call.config.model.head_out_dim
  features = call.setup.task.encoder.num_features
  assert sorted(head) == ["bn0", "bn1", "dense0", "dense1", "dense2"]
  assert [head[f"dense{i}"]["kernel"].shape for i in range(3)] == [(features, hidden), (hidden, hidden), (hidden, out)]
  assert "bias" not in head["dense0"] and "bias" not in head["dense1"] and head["dense2"]["bias"].shape == (out,)


def check_last_bias_gets_no_gradient(call: LossCall) -> None:
  """The loss does not depend on a shift of every embedding by one vector, so the projector's
  last bias (which the reference has not) gets a zero gradient, up to rounding."""
  task, state = call.setup.task, call.state

  def loss(params):
    return task.loss(params, state.batch_stats, state.extra, call.batch, call.rng, jnp.zeros((), jnp.int32))[0]

  grads = jax.device_get(jax.jit(jax.grad(loss))(state.params))
  bias, kernel = np.abs(grads["head"]["dense2"]["bias"]), np.abs(grads["head"]["dense2"]["kernel"])
  assert kernel.max() > 0
  assert bias.max() <= 1e-4 * kernel.max(), (bias.max(), kernel.max())


def losses_on_one_batch(setup, steps: int) -> list[float]:
  """The loss of ``steps`` train steps (optimizer and all) on one fixed batch."""
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  batch = random_batch(setup, jax.random.key(0))
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch)
    assert bool(metrics["finite"])
    losses.append(float(metrics["loss"]))
  return losses
