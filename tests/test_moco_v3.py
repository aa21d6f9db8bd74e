"""MoCo v3 (jssl.tasks.moco_v3): the loss on the networks' outputs, the momentum network's
EMA schedule and its lack of gradient, the frozen patch projection of ViTs, export of both
networks, and the recipes."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO, first_updates
from random_runs import write_random_run

from benchmarks.random_batch import random_batch
from jssl import export, parallel, train
from jssl.config import load_config, validate
from jssl.errors import ConfigError
from jssl.losses import moco_v3
from jssl.models import EncoderWithHead, MLPHead, build_encoder
from jssl.tasks.moco_v3 import MoCoV3, contrastive_top1

SMOKE = f"{REPO / 'configs' / 'smoke.py'}:moco_v3"
BASE_MOMENTUM = 0.9  # further from 1 than the paper's 0.99, so that the average visibly lags


def _config():
  config = load_config(SMOKE)
  config.moco_v3.base_momentum = BASE_MOMENTUM
  return config


def _setup(config):
  return train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))


def _momentum(step: int, total: int) -> float:
  """The cosine schedule, written out: BASE_MOMENTUM at step 0, 1 at ``total``."""
  return 1 - (1 - BASE_MOMENTUM) * (math.cos(math.pi * step / total) + 1) / 2


def _reference_loss(q, k, tau):
  """``2 tau CE(q k^T / tau, arange)`` on L2-normalised rows, in float64 NumPy."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  logits = q @ k.T / tau
  top = logits.max(axis=1, keepdims=True)
  logsumexp = (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]
  return 2 * tau * np.mean(logsumexp - np.diag(logits))


def _apply(module, variables, x):
  out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
  return out, updates["batch_stats"]


STEP = 2  # the step the loss is evaluated at (steps done before it)


@pytest.fixture(scope="module")
def evaluated():
  """The task's loss, its aux and its gradients with respect to ``params`` and ``extra`` on one
  batch (one compile, shared), and the networks' outputs rebuilt here from the config and
  applied view by view."""
  config = _config()
  setup = _setup(config)
  task = setup.task
  state = train.create_state(setup, seed=0)
  # A momentum network unlike the base one (as after training), so that mixing them up shows.
  extra = jax.tree.map(lambda x: x * 1.1 + 0.01, state.extra)
  params, stats = state.params, state.batch_stats
  batch = random_batch(setup, jax.random.key(7))

  def loss_of(params, extra):
    return task.loss(params, stats, extra, batch, jax.random.key(0), jnp.asarray(STEP, jnp.int32))

  (loss, aux), grads = jax.jit(jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True))(params, extra)

  m = config.model
  projector = MLPHead(m.head_hidden_dim, m.head_out_dim, num_layers=m.head_layers, out_norm="bn_no_affine")
  predictor = MLPHead(config.moco_v3.predictor_hidden_dim, m.head_out_dim, num_layers=2, out_norm="bn_no_affine")
  branch = EncoderWithHead(encoder=build_encoder(config), head=projector)

  @jax.jit
  def reference(params, stats, momentum, view1, view2):
    def base(view, stats):
      (f, z), branch_stats = _apply(branch, {"params": params, "batch_stats": stats}, view)
      variables = {"params": params["predictor"], "batch_stats": stats["predictor"]}
      q, predictor_stats = _apply(predictor, variables, z)
      return f, q, {**branch_stats, "predictor": predictor_stats}

    f1, q1, stats = base(view1, stats)
    _, q2, stats = base(view2, stats)
    (_, k1), momentum_stats = _apply(branch, momentum, view1)
    (_, k2), momentum_stats = _apply(branch, {**momentum, "batch_stats": momentum_stats}, view2)
    return {"f1": f1, "q1": q1, "q2": q2, "k1": k1, "k2": k2, "stats": stats, "momentum_stats": momentum_stats}

  want = reference(params, stats, extra["momentum"], batch["view1"], batch["view2"])
  return dict(
    config=config, loss=loss, aux=aux, grads=grads, extra=extra, want=jax.device_get(want), total=setup.total_steps
  )


@pytest.mark.slow  # the module fixture compiles both networks (~40 s); the loss itself: tests/test_ssl_losses.py
def test_loss_is_the_symmetric_moco_v3_loss_of_the_queries_and_momentum_keys(evaluated):
  """The task's loss, statistics and metrics against the networks rebuilt from the config:
  ``moco_v3(q1, k2) + moco_v3(q2, k1)``, q from the predictor, k from the momentum encoder and
  projector."""
  config, want = evaluated["config"], evaluated["want"]
  loss, (batch_stats, extra, metrics, features) = evaluated["loss"], evaluated["aux"]
  q1, q2, k1, k2 = (np.asarray(want[name], np.float64) for name in ("q1", "q2", "k1", "k2"))
  tau = config.moco_v3.temperature
  np.testing.assert_allclose(float(loss), _reference_loss(q1, k2, tau) + _reference_loss(q2, k1, tau), rtol=1e-4)
  via_library = moco_v3(q1, k2, temperature=tau) + moco_v3(q2, k1, temperature=tau)
  np.testing.assert_allclose(float(loss), float(via_library), rtol=1e-4)
  assert not np.allclose(k1, q1, atol=1e-2), "keys and queries come from different networks"
  np.testing.assert_allclose(np.asarray(features), want["f1"], rtol=1e-4, atol=1e-5)

  # BN statistics: the base network's after both views; the momentum network's its own.
  for got, expected in [(batch_stats, want["stats"]), (extra["momentum"]["batch_stats"], want["momentum_stats"])]:
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  before = evaluated["extra"]["momentum"]["params"]
  for a, b in zip(jax.tree.leaves(extra["momentum"]["params"]), jax.tree.leaves(before)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the loss does not move the average

  def top1(q, k):
    return np.mean(np.argmax(q @ (k / np.linalg.norm(k, axis=1, keepdims=True)).T, axis=1) == np.arange(len(q)))

  np.testing.assert_allclose(float(metrics["contrastive_top1"]), (top1(q1, k2) + top1(q2, k1)) / 2, atol=1e-6)
  normalised = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
  np.testing.assert_allclose(float(metrics["embedding_std"]), np.mean(np.std(normalised, axis=0)), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["momentum"]), _momentum(STEP, evaluated["total"]), rtol=1e-6)


@pytest.mark.slow  # the module fixture compiles both networks (~40 s); the loss itself: tests/test_ssl_losses.py
def test_no_gradient_reaches_the_momentum_network(evaluated):
  grad_params, grad_extra = evaluated["grads"]
  for leaf in jax.tree.leaves(grad_extra):
    np.testing.assert_array_equal(np.asarray(leaf), 0.0)
  for part in ("encoder", "head", "predictor"):
    assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grad_params[part])), part


@pytest.mark.slow  # ~40 s; the EMA mechanism is checked fast by tests/test_byol.py and tests/test_dino.py
def test_momentum_network_is_the_cosine_ema_of_encoder_and_projector():
  setup = _setup(_config())
  step = train.make_train_step(setup)
  state = train.create_state(setup, seed=1)
  momentum = _host(state.extra["momentum"]["params"])
  assert set(momentum) == {"encoder", "head"}, "the predictor has no momentum copy"
  for a, b in zip(jax.tree.leaves(momentum), jax.tree.leaves(_host({k: state.params[k] for k in ("encoder", "head")}))):
    np.testing.assert_array_equal(a, b)  # starts as a copy
  for s in range(3):
    state, metrics = step(state, random_batch(setup, jax.random.key(10 + s)))
    assert bool(metrics["finite"])
    m = _momentum(s, setup.total_steps)
    np.testing.assert_allclose(float(metrics["momentum"]), m, rtol=1e-6)
    base = _host({k: state.params[k] for k in ("encoder", "head")})
    momentum = jax.tree.map(lambda t, o, m=m: m * t + (1 - m) * o, momentum, base)
  got = _host(state.extra["momentum"]["params"])
  for want, have in zip(jax.tree.leaves(momentum), jax.tree.leaves(got)):
    np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
  base = _host(state.params["encoder"])
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(base), jax.tree.leaves(got["encoder"])))


def _vit_config(freeze=True):
  config = _config()
  config.model.encoder = "vit_tiny"
  config.model.depth = 1
  config.model.patch_size = 4  # 16 px images: a 4 x 4 grid
  config.model.head_layers = 3  # the ViT projector
  config.moco_v3.freeze_patch_embed = freeze
  config.train.steps = 3
  return config


@pytest.mark.slow
def test_frozen_patch_projection_stays_bit_identical_while_the_vit_trains():
  """A ViT smoke run with the paper's random patch projection: its kernel and bias never change
  (their momentum copies only by rounding); the rest of the network does. (Fast counterpart:
  test_the_vit_config_routes_the_patch_projection_to_a_zero_update.)"""
  setup = _setup(_vit_config())
  step = train.make_train_step(setup)
  state = train.create_state(setup, seed=0)
  before = _host(state.params)
  for s in range(3):
    state, metrics = step(state, random_batch(setup, jax.random.key(s)))
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))
  after, momentum = _host(state.params), _host(state.extra["momentum"]["params"])
  for name in ("kernel", "bias"):
    frozen = before["encoder"]["patch_embed"]["proj"][name]
    np.testing.assert_array_equal(after["encoder"]["patch_embed"]["proj"][name], frozen)
    # The momentum copy: m * x + (1 - m) * x, as the reference computes it, is x up to float32
    # rounding (bit-identical or not depending on the compiler's fusion of the two products).
    np.testing.assert_allclose(momentum["encoder"]["patch_embed"]["proj"][name], frozen, rtol=1e-6, atol=1e-7)
  moved = [
    ("encoder", "patch_embed", "pos_embed"),
    ("encoder", "blocks_0", "attn", "qkv", "kernel"),
    ("encoder", "cls_token"),
    ("head", "dense0", "kernel"),
    ("predictor", "dense1", "kernel"),
  ]
  for path in moved:
    a, b = before, after
    for key in path:
      a, b = a[key], b[key]
    assert not np.allclose(a, b), f"{'/'.join(path)} should train"


def test_freezing_the_patch_projection_of_a_resnet_is_refused():
  config = _config()
  config.moco_v3.freeze_patch_embed = True
  with pytest.raises(ConfigError, match="freeze_patch_embed=True freezes a ViT's patch projection; resnet_tiny"):
    MoCoV3(config)


@pytest.mark.parametrize(
  ("field", "value", "message"),
  [
    ("temperature", 0.0, "moco_v3.temperature=0.0"),
    ("base_momentum", 1.5, "moco_v3.base_momentum=1.5"),
    ("predictor_hidden_dim", 0, "moco_v3.predictor_hidden_dim=0"),
    ("predictor_out_norm", "layer", "moco_v3.predictor_out_norm='layer': choose one of"),
  ],
)
def test_invalid_settings_are_config_errors(field, value, message):
  config = _config()
  config.moco_v3[field] = value
  with pytest.raises(ConfigError, match=message):
    MoCoV3(config)


def test_export_writes_the_base_encoder_or_the_momentum_one(tmp_path):
  config = _config()
  _, states = write_random_run(config, tmp_path / "run", steps=(4,))
  state = jax.device_get(states[4])

  def by_path(tree):
    return {jax.tree_util.keystr(path): np.asarray(v) for path, v in jax.tree_util.tree_leaves_with_path(tree)}

  def same(got, want):
    got, want = by_path(got), by_path(want)
    assert got.keys() == want.keys() and got
    for key in got:
      np.testing.assert_array_equal(got[key], want[key])

  out = export.export_encoder(tmp_path / "run", tmp_path / "base", format="npz")
  loaded = export.load_encoder(out)
  same(loaded.params, state.params["encoder"])
  same(loaded.batch_stats, state.batch_stats["encoder"])
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"] == "base"

  out = export.export_encoder(tmp_path / "run", tmp_path / "momentum", format="npz", network="momentum")
  loaded = export.load_encoder(out)
  same(loaded.params, state.extra["momentum"]["params"]["encoder"])
  same(loaded.batch_stats, state.extra["momentum"]["batch_stats"]["encoder"])
  assert json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"] == "momentum"
  with pytest.raises(ConfigError, match="has no network 'target'; it exports base, momentum"):
    export.export_encoder(tmp_path / "run", tmp_path / "target", format="npz", network="target")


def test_contrastive_top1_counts_queries_whose_nearest_key_is_their_own():
  rng = np.random.default_rng(0)
  k = rng.standard_normal((6, 4))
  q = k * rng.uniform(0.5, 3.0, (6, 1))  # each query points at its own key
  q[4] = -k[4]  # ... except two
  q[5] = k[0]
  np.testing.assert_allclose(float(contrastive_top1(jnp.asarray(q), jnp.asarray(k))), 4 / 6)


@pytest.mark.parametrize(
  "recipe",
  [
    "moco_v3_cifar10.py",
    "moco_v3_imagenet.py",
    "moco_v3_imagenet.py:resnet50_300ep",
    "moco_v3_imagenet.py:resnet50_1000ep",
    "moco_v3_imagenet.py:vit",
  ],
)
def test_recipes_validate_and_build(recipe):
  config = load_config(REPO / "configs" / recipe)
  validate(config)
  task = MoCoV3(config)
  assert task.networks == ("base", "momentum")
  vit = recipe.endswith(":vit")
  assert config.moco_v3.freeze_patch_embed == vit
  assert config.model.head_layers == (3 if vit else 2)  # MoCo_ViT / MoCo_ResNet in the reference
  assert config.moco_v3.predictor_out_norm == ("bn_no_affine" if vit else "none")
  assert config.augment.view2.solarize_prob == 0.2 and config.augment.view1.solarize_prob == 0.0


def test_the_vit_config_routes_the_patch_projection_to_a_zero_update():
  """The tiny ViT config's train step traces with the state's structure, and its optimizer gives
  zero updates to the patch projection only."""
  setup = _setup(_vit_config())
  state = train.abstract_state(setup)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), train.example_batch(setup))
  new_state, metrics = jax.eval_shape(train.make_train_step(setup), state, batch)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert {"loss", "embedding_std", "momentum", "contrastive_top1"} <= set(metrics)

  task = setup.task
  params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), state.params)
  tx = task.optimizer(optax.sgd(0.1))
  updates = first_updates(tx, jax.tree.map(jnp.ones_like, params), params)
  flat = {jax.tree_util.keystr(p): np.asarray(u) for p, u in jax.tree_util.tree_leaves_with_path(updates)}
  frozen = [key for key, u in flat.items() if not u.any()]
  assert sorted(frozen) == [
    "['encoder']['patch_embed']['proj']['bias']",
    "['encoder']['patch_embed']['proj']['kernel']",
  ]
