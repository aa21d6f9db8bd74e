"""SimSiam (jssl/tasks/simsiam.py): its loss against the network outputs computed here and a
float64 NumPy formula, the stop-gradient switch (gradients, and the collapse the paper shows
without it), the fixed predictor learning rate, the one exported encoder and the settings it
refuses. The train-step contract: tests/test_task_contracts.py; runs: test_task_runs.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from benchmarks.random_batch import random_batch
from jssl import optim, train
from jssl.config import load_config
from jssl.errors import ConfigError
from jssl.losses import simsiam
from jssl.tasks import make_task

SMOKE = str(REPO / "configs" / "smoke.py")


def _config(**settings):
  config = load_config(f"{SMOKE}:simsiam")
  for key, value in settings.items():
    config.simsiam[key] = value
  return config


def _cos64(p, z):
  p, z = np.asarray(p, np.float64), np.asarray(z, np.float64)
  return np.sum(p * z, axis=-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(z, axis=-1))


def _outputs(task, params, batch_stats, views):
  """``[(features, z, p)]`` per view, each through the network on its own, and the final BN stats."""
  outputs = []
  for view in views:
    out, updates = task.model.apply(
      {"params": params, "batch_stats": batch_stats}, view, train=True, mutable=["batch_stats"]
    )
    outputs.append(out)
    batch_stats = updates["batch_stats"]
  return outputs, batch_stats


def test_loss_is_the_symmetrised_negative_cosine_of_predictions_and_projections():
  setup = train.make_setup(_config())
  task = setup.task
  state = train.create_state(setup, seed=0)
  batch = random_batch(setup, jax.random.key(0))
  rng, step = jax.random.key(1), jnp.zeros((), jnp.int32)
  loss, (batch_stats, extra, metrics, features) = jax.jit(task.loss)(
    state.params, state.batch_stats, state.extra, batch, rng, step
  )
  ((f1, z1, p1), (_, z2, p2)), want_stats = _outputs(task, state.params, state.batch_stats, task.views(batch, rng))
  np.testing.assert_allclose(loss, -(_cos64(p1, z2).mean() + _cos64(p2, z1).mean()) / 2, rtol=1e-5)
  np.testing.assert_allclose(features, f1, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(batch_stats), jax.tree.leaves(want_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert extra == {} and task.networks == ()
  # The projector ends in BN without affine: z is standardised over the batch, per view.
  z1 = np.asarray(z1, np.float64)
  np.testing.assert_allclose(z1.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(z1.var(0), 1, rtol=1e-3)  # var / (var + eps), eps = 1e-5
  assert set(metrics) == {"embedding_std"}
  assert 0 < float(metrics["embedding_std"]) < 1


@pytest.mark.parametrize("stop", [True, False])
def test_stop_gradient_setting_decides_whether_the_gradient_flows_through_z(stop):
  """The task's gradient equals the gradient of the formula written here, with z a constant
  (stop_gradient=True) or not (the ablation); the two differ."""
  setup = train.make_setup(_config(stop_gradient=stop))
  task = setup.task
  state = train.create_state(setup, seed=0)
  batch = random_batch(setup, jax.random.key(0))
  rng, step = jax.random.key(1), jnp.zeros((), jnp.int32)
  views = task.views(batch, rng)

  def formula(params, stop_z):
    ((_, z1, p1), (_, z2, p2)), _ = _outputs(task, params, state.batch_stats, views)
    if stop_z:
      z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)

    def cos(p, z):
      return jnp.sum(p * z, -1) / (jnp.linalg.norm(p, axis=-1) * jnp.linalg.norm(z, axis=-1))

    return -(cos(p1, z2).mean() + cos(p2, z1).mean()) / 2

  _, grads = jax.jit(task.loss_and_grads)(state.params, state.batch_stats, state.extra, batch, rng, step)
  want = jax.grad(formula)(state.params, stop)
  other = jax.grad(formula)(state.params, not stop)
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6)
  differ = [not np.allclose(g, o, rtol=1e-3, atol=1e-6) for g, o in zip(jax.tree.leaves(grads), jax.tree.leaves(other))]
  assert any(differ)
  # The predictor sits only on the predicted side: stopping z does not change its gradient.
  for g, o in zip(jax.tree.leaves(grads["predictor"]), jax.tree.leaves(other["predictor"])):
    np.testing.assert_allclose(g, o, rtol=1e-4, atol=1e-7)


def test_the_loss_stops_the_gradient_of_z_unless_told_not_to():
  rng = np.random.default_rng(0)
  p, z = (jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2))
  assert not np.any(jax.grad(lambda z: simsiam(p, z))(z))
  grad = np.asarray(jax.grad(lambda z: simsiam(p, z, stop_gradient=False))(z), np.float64)
  # d/dz of -mean cos(p, z): -(p/|p| - cos z/|z|) / (|z| N), in float64.
  p64, z64 = np.asarray(p, np.float64), np.asarray(z, np.float64)
  pn, zn = np.linalg.norm(p64, axis=-1, keepdims=True), np.linalg.norm(z64, axis=-1, keepdims=True)
  cos = np.sum(p64 * z64, -1, keepdims=True) / (pn * zn)
  np.testing.assert_allclose(grad, -(p64 / pn - cos * z64 / zn) / (zn * len(p64)), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(simsiam(p, z, stop_gradient=False), simsiam(p, z), rtol=0)  # same value


def _first_sgd_update(fix_predictor_lr):
  """``(params, updates)`` of the first SGD step (lr 0: warm-up) with every gradient 0.5."""
  config = _config(fix_predictor_lr=fix_predictor_lr)
  config.optim.name = "sgd"
  config.optim.warmup_epochs = 1.0
  config.optim.weight_decay = 1e-2
  setup = train.make_setup(config)
  assert setup.schedule(0) == 0
  params = train.create_state(setup, seed=0).params
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
  updates, _ = setup.tx.update(grads, setup.tx.init(params), params)
  return config, params, updates


def test_fix_predictor_lr_keeps_the_predictors_learning_rate_at_the_peak():
  """During warm-up (lr 0 at step 0) the model's SGD step is zero and the predictor's is
  ``-peak * (g + wd * p)`` (kernels; ``-peak * g`` for vectors): SGD at the constant peak rate."""
  config, params, updates = _first_sgd_update(True)
  peak = optim.scaled_learning_rate(
    config.optim.base_lr, batch_size=config.train.batch_size, scaling=config.optim.lr_scaling
  )
  flat = dict(jax.tree_util.tree_leaves_with_path(params["predictor"]))
  for path, u in jax.tree_util.tree_leaves_with_path(updates["predictor"]):
    p = np.asarray(flat[path], np.float64)
    decay = config.optim.weight_decay * p if p.ndim > 1 else 0.0
    np.testing.assert_allclose(u, -peak * (0.5 + decay), rtol=1e-5)
  assert all(not np.any(u) for k in ("encoder", "projector") for u in jax.tree.leaves(updates[k]))
  # Without it the predictor follows the schedule with the rest: no step at lr 0.
  _, _, updates = _first_sgd_update(False)
  assert all(not np.any(u) for u in jax.tree.leaves(updates))


def test_fix_predictor_lr_needs_sgd_and_widths_must_be_positive():
  config = _config(fix_predictor_lr=True)  # the smoke run's AdamW
  with pytest.raises(ConfigError, match="simsiam.fix_predictor_lr=True needs optim.name='sgd'"):
    make_task(config)
  with pytest.raises(ConfigError, match="simsiam.predictor_hidden_dim=0: use a positive width"):
    make_task(_config(predictor_hidden_dim=0))


def test_the_one_encoder_is_exported():
  setup = train.make_setup(_config())
  state = train.create_state(setup, seed=0)
  variables = setup.task.encoder_variables(state.params, state.batch_stats, state.extra)
  assert variables["params"] is state.params["encoder"]
  with pytest.raises(ConfigError, match="has no network 'target'; it exports encoder"):
    setup.task.encoder_variables(state.params, state.batch_stats, state.extra, "target")
