"""SimSiam (jssl/tasks/simsiam.py): its loss against the network outputs computed here and a
float64 NumPy formula, the stop-gradient switch (gradients, and the collapse the paper shows
without it), the fixed predictor learning rate, the one exported encoder and the settings it
refuses. The train-step contract: tests/test_task_contracts.py; runs: test_task_runs.py."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO
from random_runs import random_state
from tiny_encoder import with_tiny_encoder

from benchmarks.random_batch import random_batch
from jssl import optim, train
from jssl.config import load_config
from jssl.errors import ConfigError
from jssl.losses import simsiam
from jssl.tasks import make_task

SMOKE = str(REPO / "configs" / "smoke.py")
STEP0 = jnp.zeros((), jnp.int32)


def _config(**settings):
  """The smoke run's (16-d outputs, 3-layer projector, 8-wide predictor) on 8 px images."""
  config = load_config(f"{SMOKE}:simsiam")
  config.data.image_size = 8
  config.data.synthetic_shape = (8, 8, 3)
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
  state = random_state(setup, seed=0)  # the real encoder's variables without compiling its init (~15 s)
  params, batch_stats = state.params, state.batch_stats
  batch = random_batch(setup, jax.random.key(0))
  rng = jax.random.key(1)
  loss, (new_stats, extra, metrics, features) = jax.jit(task.loss)(params, batch_stats, {}, batch, rng, STEP0)
  outputs = jax.jit(lambda p, s, views: _outputs(task, p, s, views))
  ((f1, z1, p1), (_, z2, p2)), want_stats = outputs(params, batch_stats, task.views(batch, rng))
  np.testing.assert_allclose(loss, -(_cos64(p1, z2).mean() + _cos64(p2, z1).mean()) / 2, rtol=1e-5)
  np.testing.assert_allclose(features, f1, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(new_stats), jax.tree.leaves(want_stats)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert extra == {} and task.networks == ()
  # The projector ends in BN without affine: z is standardised over the batch, per view.
  assert "bn2" in batch_stats["projector"] and "bn2" not in params["projector"]  # no scale, no shift
  z1 = np.asarray(z1, np.float64)
  np.testing.assert_allclose(z1.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(z1.var(0), 1, rtol=1e-3)  # var / (var + eps), eps = 1e-5
  assert set(metrics) == {"embedding_std"}

  def std64(z):
    z = np.asarray(z, np.float64)
    return np.mean(np.std(z / np.linalg.norm(z, axis=-1, keepdims=True), axis=0))

  np.testing.assert_allclose(metrics["embedding_std"], (std64(z1) + std64(z2)) / 2, rtol=1e-5)


def test_stop_gradient_setting_decides_whether_the_gradient_flows_through_z():
  """The task's gradient equals the gradient of the formula written here, with z a constant
  (stop_gradient=True) or not (the paper's ablation); the two differ, but not for the
  predictor, which sits on the predicting side only. (A tiny encoder: what is tested is the
  wiring around it.)"""
  rng = np.random.default_rng(0)
  views = tuple(jnp.asarray(rng.random((16, 8, 8, 3)), jnp.float32) for _ in range(2))
  batch = {"view1": views[0], "view2": views[1], "label": jnp.zeros(16, jnp.int32)}
  tasks = {stop: with_tiny_encoder(make_task(_config(stop_gradient=stop))) for stop in (True, False)}
  variables = tasks[True].init(jax.random.key(0), batch)
  params, batch_stats = variables["params"], variables["batch_stats"]

  def formula(params, stop_z):
    ((_, z1, p1), (_, z2, p2)), _ = _outputs(tasks[True], params, batch_stats, views)
    if stop_z:
      z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)

    def cos(p, z):
      return jnp.sum(p * z, -1) / (jnp.linalg.norm(p, axis=-1) * jnp.linalg.norm(z, axis=-1))

    return -(cos(p1, z2).mean() + cos(p2, z1).mean()) / 2

  @jax.jit
  def gradients(params):
    got = {
      stop: task.loss_and_grads(params, batch_stats, {}, batch, jax.random.key(1), STEP0)[1]
      for stop, task in tasks.items()
    }
    return got, {stop: jax.grad(formula)(params, stop) for stop in tasks}

  got, want = gradients(params)
  for stop in tasks:
    for g, w in zip(jax.tree.leaves(got[stop]), jax.tree.leaves(want[stop])):
      np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7)
  pairs = list(zip(jax.tree.leaves(want[True]), jax.tree.leaves(want[False])))
  assert sum(not np.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in pairs) > len(pairs) // 2
  for a, b in zip(jax.tree.leaves(want[True]["predictor"]), jax.tree.leaves(want[False]["predictor"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


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


def _train_tiny(stop_gradient: bool, *, steps=300, batch=64, lr=0.03):
  """SimSiam's loss (the task's; the smoke run's projector and predictor, 16-d output) on a
  tiny encoder, ``steps`` Adam steps in one ``lax.scan``; each batch is fresh random 8 px
  images, view 2 their mirror image plus noise. Returns ``(embedding_std per step, z [batch, D]
  of a fresh batch after training)``."""
  task = with_tiny_encoder(make_task(_config(stop_gradient=stop_gradient)))
  shape = (batch, 8, 8, 3)
  variables = task.model.init(jax.random.key(0), jnp.zeros(shape), train=False)
  tx = optax.adam(lr)

  def views(key):
    k1, k2 = jax.random.split(key)
    x = jax.random.uniform(k1, shape)
    return {"view1": x, "view2": jnp.clip(x[:, :, ::-1] + 0.1 * jax.random.normal(k2, shape), 0, 1)}

  def step(carry, key):
    params, batch_stats, opt_state = carry
    (_, (batch_stats, _, metrics, _)), grads = task.loss_and_grads(params, batch_stats, {}, views(key), key, STEP0)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), metrics["embedding_std"]

  @jax.jit
  def run(params, batch_stats):
    carry = (params, batch_stats, tx.init(params))
    (params, batch_stats, _), stds = jax.lax.scan(step, carry, jax.random.split(jax.random.key(1), steps))
    variables = {"params": params, "batch_stats": batch_stats}
    (_, z, _), _ = task.model.apply(variables, views(jax.random.key(2))["view1"], train=True, mutable=["batch_stats"])
    return stds, z

  stds, z = run(variables["params"], variables["batch_stats"])
  return np.asarray(stds), np.asarray(z, np.float64)


# 11 s in a session on the shared 2-core machine (two small compiles, 2 x 300 steps).
# The faster check of the same switch: test_stop_gradient_setting_decides_whether_the_gradient_flows_through_z.
@pytest.mark.slow  # fast cover: the stop-gradient tests above (the gradient through z is cut or not)
def test_without_stop_gradient_simsiam_collapses_and_with_it_it_does_not():
  """The paper's ablation (Sec. 4.1, Fig. 2) at toy scale. Healthy L2-normalised outputs have
  ``embedding_std`` ~ 1/sqrt(D); without the stop-gradient the outputs collapse onto one
  direction. The projector's last BN (no affine) keeps z zero-mean over the batch, so the
  collapsed z is ``+-u`` (most examples on one side): ``embedding_std`` ~ 2/sqrt(B) of the
  healthy value, not 0 (the paper's B = 512 makes that look like 0).

  Measured (CPU): with the stop-gradient the last 50 steps' mean std is 0.2476 (1/sqrt(16) =
  0.25) and the first principal axis holds 0.37 of the outputs' variance; without it 0.0708
  (0.085 by step 100) and 1.000: one direction."""
  healthy = 1 / np.sqrt(16)
  with_stop, z_with = _train_tiny(True)
  without, z_without = _train_tiny(False)

  def top_share(z):
    """Fraction of the L2-normalised outputs' variance along their first principal axis; 1 when
    every output is 0 (the projector's last BN maps a batch of equal inputs to 0: collapse to
    one point, seen without the stop-gradient under other compiler settings)."""
    norms = np.linalg.norm(z, axis=-1, keepdims=True)
    if np.all(norms < 1e-6):
      return 1.0
    z = z[norms[:, 0] >= 1e-6] / norms[norms[:, 0] >= 1e-6]
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    return s[0] ** 2 / np.sum(s**2)

  print(
    f"embedding_std, last 50 steps: with stop-gradient {with_stop[-50:].mean():.4f}, without {without[-50:].mean():.4f}"
  )
  print(f"top principal share: with {top_share(z_with):.3f}, without {top_share(z_without):.3f}")
  assert with_stop[-50:].mean() > 0.9 * healthy
  assert without[-50:].mean() < 0.5 * healthy
  assert without[-50:].mean() < 0.5 * with_stop[-50:].mean()
  assert top_share(z_without) > 0.9 > 0.5 > top_share(z_with)


def _first_sgd_update(fix_predictor_lr):
  """``(config, params, updates)`` of the first SGD step (lr 0: warm-up) with every gradient 0.5."""
  config = _config(fix_predictor_lr=fix_predictor_lr)
  config.optim.name = "sgd"
  config.optim.warmup_epochs = 1.0
  config.optim.weight_decay = 1e-2
  setup = train.make_setup(config)
  assert setup.schedule(0) == 0
  params = with_tiny_encoder(setup.task).init(jax.random.key(0), train.example_batch(setup))["params"]
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
  updates, _ = jax.jit(setup.tx.update)(grads, setup.tx.init(params), params)
  return config, params, updates


def test_fix_predictor_lr_keeps_the_predictors_learning_rate_at_the_peak():
  """During warm-up (lr 0 at step 0) the model's SGD step is zero and the predictor's is
  ``-peak * (g + wd * p)`` (kernels; ``-peak * g`` for vectors): SGD at the constant peak rate."""
  config, params, updates = _first_sgd_update(True)
  o = config.optim
  peak = optim.scaled_learning_rate(o.base_lr, batch_size=config.train.batch_size, scaling=o.lr_scaling)
  flat = dict(jax.tree_util.tree_leaves_with_path(params["predictor"]))
  for path, u in jax.tree_util.tree_leaves_with_path(updates["predictor"]):
    p = np.asarray(flat[path], np.float64)
    decay = o.weight_decay * p if p.ndim > 1 else 0.0
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
  task = make_task(_config())
  params = {"encoder": {"w": jnp.ones(2)}, "projector": {}, "predictor": {}}
  batch_stats = {"encoder": {"mean": jnp.zeros(2)}}
  variables = task.encoder_variables(params, batch_stats, {})
  assert variables["params"] is params["encoder"] and variables["batch_stats"] is batch_stats["encoder"]
  with pytest.raises(ConfigError, match="has no network 'target'; it exports encoder"):
    task.encoder_variables(params, batch_stats, {}, "target")
