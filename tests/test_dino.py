"""DINO (jssl.tasks.dino, jssl.models.dino): the loss against a float64 NumPy reference on
networks run independently here, the center and teacher EMA against their closed forms over
real train steps, no gradient into the teacher, the last layer frozen for exactly its steps, the
teacher-temperature warm-up, the weight-normalised last layer, per-tensor gradient clipping
against NumPy, and export of either network."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from random_runs import write_random_run

from benchmarks.random_batch import random_batch
from jssl import optim, parallel, train
from jssl.config import load_config, validate
from jssl.errors import ConfigError
from jssl.models.dino import DINOHead
from jssl.tasks.dino import DINO

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = f"{REPO / 'configs' / 'smoke.py'}:dino"
STEPS = 4  # train steps the recorded run takes
BASE_MOMENTUM = 0.9  # lower than DINO's 0.996 so that the teacher visibly moves in 4 steps


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(tree))


def _setup(config):
  return train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def reference_loss(student, teacher, center, student_temperature, teacher_temperature):
  """main_dino.py's DINOLoss.forward in float64: student ``[V, N, K]``, teacher ``[2, N, K]``."""
  student, teacher = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
  log_p = np.log(_softmax(student / student_temperature))
  total, terms = 0.0, 0
  for iq in range(teacher.shape[0]):
    q = _softmax((teacher[iq] - center) / teacher_temperature)
    for v in range(student.shape[0]):
      if v == iq:
        continue  # a view never predicts itself
      total += np.mean(np.sum(-q * log_p[v], axis=-1))
      terms += 1
  return total / terms


def encoder_features(task, variables, images):
  """The encoder alone on one resolution's images ``[N, S, S, C]`` (train mode, as the step),
  applied here module by module rather than through DINONetwork."""
  features, _ = task.model.encoder.apply(
    {"params": variables["params"]["encoder"], "batch_stats": variables["batch_stats"].get("encoder", {})},
    images,
    train=True,
    mutable=["batch_stats"],
  )
  return features


def head_logits(task, variables, features):
  """The head alone on features ``[N, F]``: logits ``[N, K]``."""
  (_, logits), _ = task.model.head.apply(
    {"params": variables["params"]["head"], "batch_stats": variables["batch_stats"].get("head", {})},
    features,
    train=True,
    mutable=["batch_stats"],
  )
  return logits


def view_major(batch):
  """Globals ``[2B, ...]`` (view 1 then view 2) and locals ``[M * B, ...]`` (crop by crop), the
  reference's torch.cat order, unlike the task's example-major one (batch norm cannot tell)."""
  local = jnp.swapaxes(batch["local"], 0, 1)
  return jnp.concatenate([batch["view1"], batch["view2"]]), local.reshape((-1, *local.shape[2:]))


def independent_logits(task, params, batch_stats, teacher, batch):
  """Student ``[2 + M, B, K]``, teacher ``[2, B, K]`` logits and the student's view-1 features."""
  size = batch["view1"].shape[0]
  globals_, locals_ = view_major(batch)
  student_vars = {"params": params, "batch_stats": batch_stats}
  student_global = encoder_features(task, student_vars, globals_)
  student_local = encoder_features(task, student_vars, locals_)
  student = head_logits(task, student_vars, jnp.concatenate([student_global, student_local]))
  teacher_logits = head_logits(task, teacher, encoder_features(task, teacher, globals_))
  return (
    np.asarray(student).reshape(-1, size, student.shape[-1]),
    np.asarray(teacher_logits).reshape(2, size, -1),
    np.asarray(student_global[:size]),
  )


def temperature_at(step, settings, steps_per_epoch):
  warmup = round(settings.warmup_teacher_temperature_epochs * steps_per_epoch)
  progress = min(step / warmup, 1.0) if warmup else 1.0
  start, end = settings.warmup_teacher_temperature, settings.teacher_temperature
  return start + (end - start) * progress


def momentum_at(step, total):
  return 1 - (1 - BASE_MOMENTUM) * (math.cos(math.pi * step / total) + 1) / 2


@pytest.fixture(scope="module")
def recorded_run():
  """STEPS train steps of the smoke config (last layer frozen for 2), recording before each the
  teacher's logits on that batch (run here) and after each the student and teacher."""
  config = load_config(SMOKE)
  config.dino.base_momentum = BASE_MOMENTUM
  setup = _setup(config)
  task = setup.task
  assert task.freeze_last_layer_steps == 2 and setup.total_steps == 16 and task.steps_per_epoch == 8
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  record = {"initial": _host({"params": state.params, "extra": state.extra}), "teacher_logits": [], "after": []}
  record["metrics"] = []
  for s in range(STEPS):
    batch = random_batch(setup, jax.random.key(s))
    _, teacher_logits, _ = independent_logits(task, state.params, state.batch_stats, state.extra["teacher"], batch)
    record["teacher_logits"].append(teacher_logits.astype(np.float64))
    state, metrics = step(state, batch)
    assert bool(metrics["finite"])
    record["metrics"].append(_host(metrics))
    record["after"].append(_host({"params": state.params, "extra": state.extra, "batch_stats": state.batch_stats}))
  return setup, state, record


def test_loss_is_dino_over_the_pairs_of_independently_run_student_and_teacher(recorded_run):
  setup, state, _ = recorded_run
  task, s = setup.task, setup.task.settings
  batch = random_batch(setup, jax.random.key(10))
  step = jnp.asarray(STEPS, jnp.int32)
  loss, (_, extra, metrics, features) = jax.jit(task.loss)(
    state.params, state.batch_stats, state.extra, batch, jax.random.key(0), step
  )
  student, teacher, view1_features = independent_logits(
    task, state.params, state.batch_stats, state.extra["teacher"], batch
  )
  assert student.shape == (2 + task.local_crops, 32, 64) and teacher.shape == (2, 32, 64)
  assert not np.allclose(student[:2], teacher, atol=1e-3), "after 4 steps the teacher differs from the student"
  center = np.asarray(state.extra["center"], np.float64)
  assert np.abs(center).max() > 0, "the center has moved off zero"
  temperature = temperature_at(STEPS, s, task.steps_per_epoch)
  assert float(metrics["teacher_temperature"]) == pytest.approx(temperature, rel=1e-6)
  want = reference_loss(student, teacher, center, s.student_temperature, temperature)
  np.testing.assert_allclose(float(loss), want, rtol=2e-5)
  # The center after this step's loss: EMA towards this step's teacher logits (both views, whole batch).
  want_center = s.center_momentum * center + (1 - s.center_momentum) * teacher.reshape(-1, 64).mean(0)
  np.testing.assert_allclose(np.asarray(extra["center"]), want_center, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(features), view1_features, rtol=1e-5, atol=1e-5)
  q = _softmax((teacher - center) / temperature)
  entropy = np.mean(-np.sum(q * np.log(q), axis=-1))
  np.testing.assert_allclose(float(metrics["teacher_entropy"]), entropy, rtol=1e-4)
  assert 0 < float(metrics["embedding_std"]) < 1


def test_center_and_teacher_follow_their_closed_forms_over_train_steps(recorded_run):
  setup, _, record = recorded_run
  s = setup.task.settings
  m = s.center_momentum
  k = STEPS
  # c_k = sum_j (1 - m) m^(k-1-j) mean(T_j) from c_0 = 0, T_j the teacher logits of step j.
  want = sum(
    (1 - m) * m ** (k - 1 - j) * t.reshape(-1, t.shape[-1]).mean(0) for j, t in enumerate(record["teacher_logits"])
  )
  np.testing.assert_allclose(record["after"][-1]["extra"]["center"], want, rtol=1e-5, atol=1e-6)
  # theta_{j+1} = tau_j theta_j + (1 - tau_j) student_{j+1}, from theta_0 = the initial student.
  teacher = record["initial"]["params"]
  for j in range(k):
    tau = momentum_at(j, setup.total_steps)
    assert float(record["metrics"][j]["momentum"]) == pytest.approx(tau, rel=1e-6)
    teacher = jax.tree.map(lambda t, p, tau=tau: tau * t + (1 - tau) * p, teacher, record["after"][j]["params"])
  got = record["after"][-1]["extra"]["teacher"]["params"]
  for want_leaf, got_leaf in zip(jax.tree.leaves(teacher), jax.tree.leaves(got)):
    np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-5, atol=1e-6)
  initial = record["initial"]["params"]["encoder"]
  moved = max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(got["encoder"]), jax.tree.leaves(initial)))
  assert moved > 1e-4, "the teacher moved well beyond the tolerance"
  # The teacher keeps its own running averages, updated by its forward passes, not the EMA's.
  teacher_stats = record["after"][-1]["extra"]["teacher"]["batch_stats"]["encoder"]
  initial_stats = record["initial"]["extra"]["teacher"]["batch_stats"]["encoder"]
  student_stats = record["after"][-1]["batch_stats"]["encoder"]
  assert not np.allclose(jax.tree.leaves(teacher_stats)[0], jax.tree.leaves(initial_stats)[0])
  assert not np.allclose(jax.tree.leaves(teacher_stats)[0], jax.tree.leaves(student_stats)[0])


def test_last_layer_is_frozen_for_exactly_its_steps_then_trains(recorded_run):
  _, _, record = recorded_run
  initial = record["initial"]["params"]
  kernels = [after["params"]["head"]["last_layer"]["kernel"] for after in record["after"]]
  np.testing.assert_array_equal(kernels[0], initial["head"]["last_layer"]["kernel"])  # update 1 frozen
  np.testing.assert_array_equal(kernels[1], kernels[0])  # update 2 frozen
  assert np.abs(kernels[2] - kernels[1]).max() > 1e-6, "update 3 moves it"
  mlp = [after["params"]["head"]["mlp"]["dense0"]["kernel"] for after in record["after"]]
  assert np.abs(mlp[0] - initial["head"]["mlp"]["dense0"]["kernel"]).max() > 1e-6, "the rest trains from step 1"


def test_teacher_gets_no_gradient():
  setup = _setup(load_config(SMOKE))
  task = setup.task
  state = train.create_state(setup, seed=1)
  batch = random_batch(setup, jax.random.key(1))
  rng, step = jax.random.key(0), jnp.asarray(0, jnp.int32)
  (_, _), grads = task.loss_and_grads(state.params, state.batch_stats, state.extra, batch, rng, step)
  assert jax.tree.structure(grads) == jax.tree.structure(state.params)  # the student's parameters only

  def loss_of_extra(extra):
    return task.loss(state.params, state.batch_stats, extra, batch, rng, step)[0]

  extra_grads = jax.grad(loss_of_extra)(state.extra)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(extra_grads))
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads["encoder"]))


def test_teacher_temperature_warms_up_linearly_then_stays():
  config = load_config(SMOKE)  # 8 steps per epoch, warm-up over 1 epoch
  task = _setup(config).task
  got = [float(task.teacher_temperature(jnp.asarray(k))) for k in (0, 2, 4, 8, 9, 100)]
  np.testing.assert_allclose(got, [0.04, 0.04 + 0.03 / 4, 0.055, 0.07, 0.07, 0.07], rtol=1e-6)
  config.dino.warmup_teacher_temperature_epochs = 0.0
  task = _setup(config).task
  assert float(task.teacher_temperature(jnp.asarray(0))) == pytest.approx(0.07)
  # Epochs become steps of the run: DINO's defaults (30 epochs, last layer 1 epoch).
  config = load_config(SMOKE)
  config.dino.warmup_teacher_temperature_epochs, config.dino.freeze_last_layer_epochs = 30.0, 1.0
  task = _setup(config).task
  assert task.freeze_last_layer_steps == 8
  assert float(task.teacher_temperature(jnp.asarray(120))) == pytest.approx(0.04 + 0.03 / 2)


def test_last_layer_uses_unit_norm_columns_of_its_kernel():
  head = DINOHead(hidden_dim=16, bottleneck_dim=8, out_dim=12, num_layers=3)
  features = jax.random.normal(jax.random.key(0), (5, 10))
  variables = head.init(jax.random.key(1), features, train=False)
  z, logits = head.apply(variables, features, train=False)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=-1), 1.0, rtol=1e-6)
  kernel = np.asarray(variables["params"]["last_layer"]["kernel"], np.float64)
  unit = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(z, np.float64) @ unit, rtol=1e-5, atol=1e-6)
  # Rescaling the stored columns changes nothing: only their directions are used.
  scaled = jax.tree.map(lambda x: x, variables)
  scaled["params"]["last_layer"]["kernel"] = jnp.asarray(kernel * np.linspace(0.1, 7.0, 12), jnp.float32)
  np.testing.assert_allclose(head.apply(scaled, features, train=False)[1], logits, rtol=1e-5, atol=1e-6)
  assert set(variables["params"]["last_layer"]) == {"kernel"}  # no bias, no scale
  # norm_last_layer=False: a learnt per-unit scale g, starting at 1.
  free = DINOHead(hidden_dim=16, bottleneck_dim=8, out_dim=12, num_layers=3, norm_last_layer=False)
  free_vars = free.init(jax.random.key(1), features, train=False)
  np.testing.assert_array_equal(free_vars["params"]["last_layer"]["scale"], np.ones(12))
  g = np.linspace(0.5, 2.0, 12)
  free_vars["params"]["last_layer"]["scale"] = jnp.asarray(g, jnp.float32)
  z_free, logits_free = free.apply(free_vars, features, train=False)
  want = np.asarray(z_free, np.float64) @ (unit * g)
  np.testing.assert_allclose(np.asarray(logits_free), want, rtol=1e-5, atol=1e-6)


def test_head_mlp_starts_from_std_002_and_has_batch_norm_only_on_request():
  head = DINOHead(hidden_dim=512, bottleneck_dim=256, out_dim=4, num_layers=3)
  params = head.init(jax.random.key(0), jnp.zeros((2, 384)), train=False)
  kernel = np.asarray(params["params"]["mlp"]["dense1"]["kernel"])
  assert kernel.std() == pytest.approx(0.02, rel=0.02)
  assert "batch_stats" not in params
  with_bn = DINOHead(hidden_dim=8, bottleneck_dim=4, out_dim=4, num_layers=3, batch_norm=True)
  stats = with_bn.init(jax.random.key(0), jnp.zeros((2, 6)), train=False)["batch_stats"]
  assert set(stats["mlp"]) == {"bn0", "bn1"}  # after the hidden layers, not the bottleneck


def test_per_tensor_gradient_clipping_matches_numpy():
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    grads = {
      "big": rng.standard_normal((3, 4)) * 5.0,  # norm ~17: scaled down to 3
      "small": rng.standard_normal(5) * 0.1,  # norm < 3: untouched
      "zero": np.zeros((2, 2)),  # no NaN from 0 / 0
      "conv": rng.standard_normal((3, 3, 2, 4)),  # norm ~8.5: scaled down to 3
    }
    tx = optim.clip_by_tensor_norm(3.0)
    got, _ = tx.update(jax.tree.map(jnp.asarray, grads), tx.init(grads))
    for name, g in grads.items():
      norm = np.sqrt(np.sum(g * g))
      want = g * min(1.0, 3.0 / (norm + 1e-6))
      assert got[name].dtype == jnp.float64
      np.testing.assert_allclose(np.asarray(got[name]), want, rtol=1e-12, atol=1e-15)
    assert np.linalg.norm(np.asarray(got["big"])) == pytest.approx(3.0, rel=1e-6)
  with pytest.raises(ConfigError, match="max_norm=0.0 must be > 0"):
    optim.clip_by_tensor_norm(0.0)


def test_task_optimizer_clips_each_tensor_and_holds_the_last_layer():
  """The task's optimizer around plain SGD (lr 1): updates are minus the per-tensor-clipped
  gradients, zero for the last layer during its frozen steps."""
  setup = _setup(load_config(SMOKE))  # clip_grad 3.0, last layer frozen for 2 updates
  params = train.create_state(setup, seed=0).params
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 2.0, p.dtype), params)  # every tensor's norm >= 2
  tx = setup.task.optimizer(optax.sgd(1.0))
  opt_state = tx.init(params)
  for step in range(3):
    updates, opt_state = tx.update(grads, opt_state, params)
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
      names = optim.parameter_path(path)
      g = np.full(u.shape, 2.0)
      want = -g * min(1.0, 3.0 / (np.sqrt(np.sum(g * g)) + 1e-6))
      if names[:2] == ("head", "last_layer") and step < 2:
        want = np.zeros(u.shape)
      np.testing.assert_allclose(np.asarray(u), want, rtol=1e-5, err_msg=f"{'/'.join(names)} at update {step + 1}")


@pytest.mark.parametrize(
  "field, value, match",
  [
    ("out_dim", 0, "dino.out_dim=0"),
    ("teacher_temperature", 0.0, "dino.teacher_temperature=0.0 must be > 0"),
    ("center_momentum", 1.5, "dino.center_momentum=1.5"),
    ("freeze_last_layer_epochs", -1.0, "dino.freeze_last_layer_epochs=-1.0 must be >= 0"),
    ("clip_grad", -3.0, "dino.clip_grad=-3.0 must be >= 0"),
  ],
)
def test_invalid_settings_are_one_line_config_errors(field, value, match):
  config = load_config(SMOKE)
  config.dino[field] = value
  with pytest.raises(ConfigError, match=match):
    DINO(config)


def test_recipes_validate_and_build_and_a_vit_takes_local_crops():
  local_crops = {"dino_imagenet.py": 8, "dino_imagenet.py:resnet50": 8, "dino_cifar10.py": 0, "pretext_cpu.py:dino": 4}
  for recipe, crops in local_crops.items():
    config = load_config(f"{REPO / 'configs' / recipe}")
    validate(config)  # no field the task ignores, every range
    assert DINO(config).local_crops == crops  # and the task's own checks pass
  vit = load_config(f"{REPO / 'configs' / 'dino_imagenet.py'}")
  assert (vit.model.encoder, vit.train.batch_size, vit.optim.base_lr, vit.augment.local_crop_size) == (
    "vit_small",
    1024,
    0.0005,
    96,
  )
  # A small ViT: 16 px views and 8 px local crops in 4 px patches, traced through the loss.
  config = load_config(SMOKE)
  config.model.encoder, config.model.patch_size, config.model.depth = "vit_tiny", 4, 1
  setup = _setup(config)
  state = train.abstract_state(setup)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), train.example_batch(setup))
  loss, (_, _, metrics, features) = jax.eval_shape(
    setup.task.loss, state.params, state.batch_stats, state.extra, batch, jax.random.key(0), jnp.asarray(0)
  )
  assert loss.shape == () and features.shape == (32, 192)
  config.augment.local_crop_size = 6
  with pytest.raises(ConfigError, match="does not split into vit_tiny's 4 px patches"):
    DINO(config)


def test_export_writes_the_teacher_by_default_and_the_student_on_request(tmp_path):
  from jssl import export  # noqa: PLC0415

  _, states = write_random_run(load_config(SMOKE), tmp_path / "run", steps=(4,))
  state = jax.device_get(states[4])

  def by_path(tree):
    return {jax.tree_util.keystr(path): np.asarray(v) for path, v in jax.tree_util.tree_leaves_with_path(tree)}

  teacher = state.extra["teacher"]
  for network, params, stats in (
    (None, teacher["params"]["encoder"], teacher["batch_stats"]["encoder"]),
    ("student", state.params["encoder"], state.batch_stats["encoder"]),
  ):
    out = export.export_encoder(tmp_path / "run", tmp_path / f"export_{network}", format="npz", network=network)
    loaded = export.load_encoder(out)
    got, want = by_path(loaded.params), by_path(params)
    assert got.keys() == want.keys()
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])
    got_stats, want_stats = by_path(loaded.batch_stats), by_path(stats)
    assert got_stats.keys() == want_stats.keys()
    for key in want_stats:
      np.testing.assert_array_equal(got_stats[key], want_stats[key])
    recorded = json.loads((out / "jssl_encoder.json").read_text())["source_run"]["network"]
    assert recorded == (network or "teacher")
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(teacher["params"]["encoder"]), jax.tree.leaves(state.params["encoder"]))
  )
