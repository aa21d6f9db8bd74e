"""BYOL (jssl/tasks/byol.py): its loss against the network outputs computed here and a float64
NumPy formula, the target's EMA against the closed form of the cosine momentum, no gradient into
the target, its own batch statistics, export of either network, the recipes' asymmetric views and
the settings it refuses. The train-step contract: tests/test_task_contracts.py; runs: test_task_runs.py."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from random_runs import random_state, write_random_run
from tiny_encoder import with_tiny_encoder

from benchmarks.random_batch import random_batch
from jssl import export, train
from jssl.config import load_config
from jssl.errors import ConfigError
from jssl.tasks import make_task

SMOKE = str(REPO / "configs" / "smoke.py")


def _config(**byol):
  """The smoke run's (asymmetric views, 16-d outputs, 32-wide predictor) on 8 px images."""
  config = load_config(f"{SMOKE}:byol")
  config.data.image_size = 8
  config.data.synthetic_shape = (8, 8, 3)
  for key, value in byol.items():
    config.byol[key] = value
  return config


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))


def _byol64(p, z):
  """float64 NumPy: mean_i ||p_i/|p_i| - z_i/|z_i|||^2."""
  p, z = np.asarray(p, np.float64), np.asarray(z, np.float64)
  p = p / np.linalg.norm(p, axis=-1, keepdims=True)
  z = z / np.linalg.norm(z, axis=-1, keepdims=True)
  return np.mean(np.sum((p - z) ** 2, axis=-1))


def test_loss_is_byol_between_online_predictions_and_target_projections_of_the_other_view():
  setup = train.make_setup(_config())
  task = setup.task
  # The real encoder's variables without compiling its init (~15 s); a target that differs from
  # the online network, so that a swapped-in target would show.
  state = random_state(setup, seed=0)
  extra = state.extra
  assert not np.allclose(
    extra["target"]["params"]["projector"]["dense0"]["kernel"], state.params["projector"]["dense0"]["kernel"]
  )
  batch = random_batch(setup, jax.random.key(0))
  rng, step = jax.random.key(1), jnp.asarray(3, jnp.int32)
  loss, (batch_stats, new_extra, metrics, features) = jax.jit(task.loss)(
    state.params, state.batch_stats, extra, batch, rng, step
  )

  view1, view2 = task.views(batch, rng)  # host-made views: the batch's own
  np.testing.assert_array_equal(view1, batch["view1"])

  def run(variables, image, predict):
    return task.model.apply(variables, image, train=True, predict=predict, mutable=["batch_stats"])

  @jax.jit
  def outputs(online, target):
    (f1, z1, p1), u = run(online, view1, True)
    (_, z2, p2), u = run({**online, "batch_stats": u["batch_stats"]}, view2, True)
    (_, t1, _), tu = run(target, view1, False)
    (_, t2, _), tu = run({**target, "batch_stats": tu["batch_stats"]}, view2, False)
    return (f1, z1, p1, z2, p2, t1, t2), u, tu

  target = extra["target"]
  (f1, z1, p1, z2, p2, t1, t2), u, tu = outputs({"params": state.params, "batch_stats": state.batch_stats}, target)

  np.testing.assert_allclose(loss, _byol64(p1, t2) + _byol64(p2, t1), rtol=1e-5)
  np.testing.assert_allclose(features, f1, rtol=1e-5, atol=1e-6)  # the online encoder on view 1
  for a, b in zip(jax.tree.leaves(batch_stats), jax.tree.leaves(u["batch_stats"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The target's own running averages, from its two passes; its parameters untouched by the loss.
  for a, b in zip(jax.tree.leaves(new_extra["target"]["batch_stats"]), jax.tree.leaves(tu["batch_stats"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(new_extra["target"]["params"]), jax.tree.leaves(target["params"])):
    np.testing.assert_array_equal(a, b)
  assert set(target["params"]) == {"encoder", "projector"} and "predictor" in state.params

  def std64(z):
    z = np.asarray(z, np.float64)
    return np.mean(np.std(z / np.linalg.norm(z, axis=-1, keepdims=True), axis=0))

  np.testing.assert_allclose(metrics["embedding_std"], (std64(z1) + std64(z2)) / 2, rtol=1e-5)
  b, total = setup.config.byol.base_momentum, setup.total_steps
  np.testing.assert_allclose(metrics["momentum"], 1 - (1 - b) * (math.cos(math.pi * 3 / total) + 1) / 2, rtol=1e-6)


def test_the_target_follows_the_ema_of_the_online_network_and_gets_no_gradient():
  base = 0.9  # far from 1, so that m and 1 - m swapped, or a step off, would show
  setup = train.make_setup(_config(base_momentum=base))
  task = with_tiny_encoder(setup.task)  # the EMA does not depend on the encoder; the step compiles fast
  state = train.create_state(setup, seed=0)
  parts = ("encoder", "projector")
  target = _host({k: state.params[k] for k in parts})
  for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(_host(state.extra["target"]["params"]))):
    np.testing.assert_array_equal(a, b)  # a copy of the online network at the start

  # No gradient reaches the target: d loss / d extra is zero, and the gradients are the online params'.
  batch = random_batch(setup, jax.random.key(0))
  step0 = jnp.zeros((), jnp.int32)
  loss = jax.jit(jax.grad(lambda p, e: task.loss(p, state.batch_stats, e, batch, jax.random.key(1), step0)[0], (0, 1)))
  grads, grad_extra = loss(state.params, state.extra)
  assert all(not np.any(g) for g in jax.tree.leaves(grad_extra))
  _, task_grads = jax.jit(task.loss_and_grads)(
    state.params, state.batch_stats, state.extra, batch, jax.random.key(1), step0
  )
  assert jax.tree.structure(task_grads) == jax.tree.structure(state.params) == jax.tree.structure(grads)
  for a, b in zip(jax.tree.leaves(task_grads), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert all(np.any(np.asarray(g)) for g in jax.tree.leaves(task_grads["predictor"]))

  start_stats = _host(state.extra["target"]["batch_stats"])
  step = train.make_train_step(setup)
  for s in range(3):
    state, metrics = step(state, random_batch(setup, jax.random.key(s)))
    assert bool(metrics["finite"])
    m = 1 - (1 - base) * (math.cos(math.pi * s / setup.total_steps) + 1) / 2
    np.testing.assert_allclose(metrics["momentum"], m, rtol=1e-6)
    online = _host({k: state.params[k] for k in parts})
    target = jax.tree.map(lambda t, o, m=m: m * t + (1 - m) * o, target, online)
  for want, got in zip(jax.tree.leaves(target), jax.tree.leaves(_host(state.extra["target"]["params"]))):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  online = _host(state.params["encoder"])
  assert not np.allclose(jax.tree.leaves(online)[0], jax.tree.leaves(target["encoder"])[0]), "the target lags"
  # The target's running averages moved (its own forward passes), and are not the online ones.
  target_stats = _host(state.extra["target"]["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(start_stats), jax.tree.leaves(target_stats)))
  online_stats = _host({k: state.batch_stats[k] for k in parts if k in state.batch_stats})  # the projector's BN
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(online_stats), jax.tree.leaves(target_stats)))


def test_export_takes_the_online_encoder_by_default_and_the_target_on_request(tmp_path):
  _, states = write_random_run(_config(), tmp_path / "run", steps=(4,))
  state = jax.device_get(states[4])

  def by_path(tree):
    return {jax.tree_util.keystr(path): np.asarray(v) for path, v in jax.tree_util.tree_leaves_with_path(tree)}

  def check(loaded, params, batch_stats):
    got, want = by_path(loaded.params), by_path(params)
    assert got.keys() == want.keys()
    for key in got:
      np.testing.assert_array_equal(got[key], want[key])
    got, want = by_path(loaded.batch_stats), by_path(batch_stats)
    assert got.keys() == want.keys() and got
    for key in got:
      np.testing.assert_array_equal(got[key], want[key])

  out = export.export_encoder(tmp_path / "run", tmp_path / "online", format="npz")
  check(export.load_encoder(out), state.params["encoder"], state.batch_stats["encoder"])
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"] == "online"
  out = export.export_encoder(tmp_path / "run", tmp_path / "target", format="npz", network="target")
  target = state.extra["target"]
  check(export.load_encoder(out), target["params"]["encoder"], target["batch_stats"]["encoder"])
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"] == "target"
  with pytest.raises(ConfigError, match="has no network 'teacher'; it exports online, target"):
    export.export_encoder(tmp_path / "run", tmp_path / "teacher", format="npz", network="teacher")


def test_the_recipes_make_the_papers_asymmetric_views():
  for recipe in ("byol_imagenet.py", "byol_cifar10.py", f"{SMOKE}:byol"):
    config = load_config(recipe if recipe.startswith("/") else REPO / "configs" / recipe)
    task = make_task(config)
    view1, view2 = task.crops.global_configs
    assert (view1.solarize_prob, view2.solarize_prob) == (0.0, 0.2)
    if recipe != "byol_cifar10.py":  # solo-learn's CIFAR views have no blur
      assert (view1.blur_prob, view2.blur_prob) == (1.0, 0.1)
    else:
      assert view1.blur_prob == view2.blur_prob == 0.0
  config = load_config(REPO / "configs" / "byol_imagenet.py")
  assert (config.model.head_hidden_dim, config.model.head_out_dim, config.byol.predictor_hidden_dim) == (
    4096,
    256,
    4096,
  )


@pytest.mark.parametrize(
  ("field", "value", "message"),
  [
    ("base_momentum", 1.5, r"byol.base_momentum=1.5: use an EMA momentum in \[0, 1\]"),
    ("predictor_hidden_dim", 0, "byol.predictor_hidden_dim=0: use a positive width"),
  ],
)
def test_invalid_settings_are_refused_with_the_fix(field, value, message):
  with pytest.raises(ConfigError, match=message):
    make_task(_config(**{field: value}))


def test_the_momentum_needs_the_runs_length():
  task = make_task(_config())  # built without a source: no total_steps
  with pytest.raises(ConfigError, match="build the task with its data source"):
    task.momentum(jnp.zeros((), jnp.int32))
