"""DINO (jssl.tasks.dino, jssl.models.dino): the loss against a float64 NumPy reference on
networks run independently here (random weights: teacher, student and center all differ), the
center and the teacher EMA against their closed forms, no gradient into the teacher or the
center, the teacher-temperature warm-up, the weight-normalised last layer, per-tensor gradient
clipping against NumPy and the frozen last layer in the task's optimizer, recipes, and export of
either network. A slow test checks the closed forms and the freeze through the train loop's step."""

import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from random_runs import random_state, write_random_run

from benchmarks.random_batch import random_batch
from jssl import optim, parallel, train
from jssl.config import load_config, validate
from jssl.errors import ConfigError
from jssl.models.dino import DINOHead
from jssl.tasks.dino import DINO

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = f"{REPO / 'configs' / 'smoke.py'}:dino"


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


@functools.cache
def independent_passes(task):
  """A jitted ``(params, batch_stats, teacher, batch) ->`` student ``[2 + M, B, K]`` and teacher
  ``[2, B, K]`` logits and the student's view-1 features ``[B, F]``, from the module-by-module
  passes above (one compile per task)."""

  @jax.jit
  def run(params, batch_stats, teacher, batch):
    size = batch["view1"].shape[0]
    globals_, locals_ = view_major(batch)
    student_vars = {"params": params, "batch_stats": batch_stats}
    student_global = encoder_features(task, student_vars, globals_)
    student_local = encoder_features(task, student_vars, locals_)
    student = head_logits(task, student_vars, jnp.concatenate([student_global, student_local]))
    teacher_logits = head_logits(task, teacher, encoder_features(task, teacher, globals_))
    return student.reshape(-1, size, student.shape[-1]), teacher_logits.reshape(2, size, -1), student_global[:size]

  return run


def independent_logits(task, params, batch_stats, teacher, batch):
  return tuple(np.asarray(x) for x in independent_passes(task)(params, batch_stats, teacher, batch))


def temperature_at(step, settings, steps_per_epoch):
  warmup = round(settings.warmup_teacher_temperature_epochs * steps_per_epoch)
  progress = min(step / warmup, 1.0) if warmup else 1.0
  start, end = settings.warmup_teacher_temperature, settings.teacher_temperature
  return start + (end - start) * progress


def momentum_at(step, total, base):
  return 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2


@pytest.fixture(scope="module")
def random_setup():
  """The smoke config's setup and a state drawn at random (``random_runs.random_state``: no
  compile), so the teacher, the student and the center all differ from the start."""
  setup = _setup(load_config(SMOKE))
  return setup, random_state(setup, seed=0)


@functools.cache
def jitted_loss(task):
  """``(params, batch_stats, extra, batch, step) -> (loss, aux)``, the task's loss, jitted once."""
  return jax.jit(
    lambda params, batch_stats, extra, batch, step: task.loss(
      params, batch_stats, extra, batch, jax.random.key(0), step
    )
  )


def test_loss_is_dino_over_the_pairs_of_independently_run_student_and_teacher(random_setup):
  setup, state = random_setup
  task, s = setup.task, setup.task.settings
  batch = random_batch(setup, jax.random.key(10))
  step = 3
  loss, (_, extra, metrics, features) = jitted_loss(task)(
    state.params, state.batch_stats, state.extra, batch, jnp.asarray(step, jnp.int32)
  )
  student, teacher, view1_features = independent_logits(
    task, state.params, state.batch_stats, state.extra["teacher"], batch
  )
  assert student.shape == (2 + task.local_crops, 32, 64) and teacher.shape == (2, 32, 64)
  assert not np.allclose(student[:2], teacher, atol=1e-2), "the teacher is another network than the student"
  center = np.asarray(state.extra["center"], np.float64)
  temperature = temperature_at(step, s, task.steps_per_epoch)
  assert float(metrics["teacher_temperature"]) == pytest.approx(temperature, rel=1e-6)
  want = reference_loss(student, teacher, center, s.student_temperature, temperature)
  np.testing.assert_allclose(float(loss), want, rtol=2e-5)
  # The center after this step's loss: EMA towards this step's teacher logits (both views, whole batch).
  want_center = s.center_momentum * center + (1 - s.center_momentum) * teacher.reshape(-1, 64).mean(0)
  np.testing.assert_allclose(np.asarray(extra["center"]), want_center, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(features), view1_features, rtol=1e-5, atol=1e-5)
  q = _softmax((teacher - center) / temperature)
  entropy = np.mean(-np.sum(q * np.log(np.maximum(q, 1e-300)), axis=-1))
  np.testing.assert_allclose(float(metrics["teacher_entropy"]), entropy, rtol=1e-4, atol=1e-6)
  assert 0 < float(metrics["embedding_std"]) < 1
  assert float(metrics["momentum"]) == pytest.approx(momentum_at(step, setup.total_steps, s.base_momentum), rel=1e-6)


def test_teacher_and_center_get_no_gradient_though_the_loss_depends_on_them(random_setup):
  setup, state = random_setup
  batch, step = random_batch(setup, jax.random.key(10)), jnp.asarray(3, jnp.int32)
  loss = jitted_loss(setup.task)

  def loss_of_extra(extra):
    return loss(state.params, state.batch_stats, extra, batch, step)[0]

  extra_grads = jax.jit(jax.grad(loss_of_extra))(state.extra)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(extra_grads))
  base = float(loss_of_extra(state.extra))
  for changed in (
    {**state.extra, "center": state.extra["center"] + jnp.linspace(0.0, 0.5, 64)},
    {**state.extra, "teacher": {**state.extra["teacher"], "params": state.params}},
  ):
    assert abs(float(loss_of_extra(changed)) - base) > 1e-4


def test_center_is_the_ema_of_the_teacher_outputs_of_each_step(random_setup):
  """Three loss calls threading ``extra``: c_3 = m^3 c_0 + sum_j (1 - m) m^(2 - j) mean(T_j),
  T_j the teacher logits of step j (computed here with that step's teacher batch statistics)."""
  setup, state = random_setup
  task, m = setup.task, setup.task.settings.center_momentum
  extra = state.extra
  center0 = np.asarray(extra["center"], np.float64)
  means = []
  for j in range(3):
    batch = random_batch(setup, jax.random.key(20 + j))
    _, teacher, _ = independent_logits(task, state.params, state.batch_stats, extra["teacher"], batch)
    means.append(teacher.reshape(-1, teacher.shape[-1]).astype(np.float64).mean(0))
    _, (_, extra, _, _) = jitted_loss(task)(state.params, state.batch_stats, extra, batch, jnp.asarray(j))
  want = m**3 * center0 + sum((1 - m) * m ** (2 - j) * mean for j, mean in enumerate(means))
  np.testing.assert_allclose(np.asarray(extra["center"]), want, rtol=1e-5, atol=1e-6)
  # The teacher's running averages moved with its forward passes; its parameters did not (that is after_update's).
  before, after = state.extra["teacher"], extra["teacher"]
  assert not np.allclose(jax.tree.leaves(after["batch_stats"])[0], jax.tree.leaves(before["batch_stats"])[0])
  for a, b in zip(jax.tree.leaves(after["params"]), jax.tree.leaves(before["params"])):
    np.testing.assert_array_equal(a, b)


def test_teacher_is_the_cosine_momentum_ema_of_the_student_after_each_update(random_setup):
  setup, state = random_setup
  task = setup.task
  after_update = jax.jit(task.after_update)
  extra = state.extra
  want = _host(extra["teacher"]["params"])
  rng = np.random.default_rng(0)
  for j in (0, 5, 15):  # steps of the 16-step run
    student = jax.tree.map(lambda p: p + rng.normal(size=p.shape).astype(np.float32), state.params)
    extra = after_update(student, extra, jnp.asarray(j, jnp.int32))
    tau = momentum_at(j, setup.total_steps, task.settings.base_momentum)
    want = jax.tree.map(lambda t, p, tau=tau: tau * t + (1 - tau) * p, want, _host(student))
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(_host(extra["teacher"]["params"]))):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(extra["center"], state.extra["center"])  # the center is the loss's to update
  moved = max(
    np.abs(a - b).max() for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(_host(state.extra["teacher"]["params"])))
  )
  assert moved > 1e-3


@pytest.mark.slow
def test_a_real_run_keeps_the_closed_forms_and_freezes_the_last_layer_for_its_steps():
  """Four steps of the train loop's step (AdamW, clipping, routing, after_update): the teacher
  is the EMA of the recorded students, the center the EMA of the recorded teacher outputs, and
  the last layer moves from the third update on (the fast tests check each piece alone)."""
  config = load_config(SMOKE)
  config.dino.base_momentum = 0.9  # the teacher visibly moves in 4 steps
  setup = _setup(config)
  task, s = setup.task, setup.task.settings
  assert task.freeze_last_layer_steps == 2 and setup.total_steps == 16
  state = train.create_state(setup, seed=0)
  step = train.make_train_step(setup)
  initial, teacher_means, students, kernels = _host(state.params), [], [], []
  for j in range(4):
    batch = random_batch(setup, jax.random.key(j))
    _, teacher, _ = independent_logits(task, state.params, state.batch_stats, state.extra["teacher"], batch)
    teacher_means.append(teacher.reshape(-1, teacher.shape[-1]).astype(np.float64).mean(0))
    state, metrics = step(state, batch)
    assert bool(metrics["finite"])
    assert float(metrics["momentum"]) == pytest.approx(momentum_at(j, 16, 0.9), rel=1e-6)
    students.append(_host(state.params))
    kernels.append(students[-1]["head"]["last_layer"]["kernel"])
  m = s.center_momentum
  want_center = sum((1 - m) * m ** (3 - j) * mean for j, mean in enumerate(teacher_means))
  np.testing.assert_allclose(np.asarray(state.extra["center"]), want_center, rtol=1e-5, atol=1e-6)
  teacher = initial
  for j, student in enumerate(students):
    tau = momentum_at(j, 16, 0.9)
    teacher = jax.tree.map(lambda t, p, tau=tau: tau * t + (1 - tau) * p, teacher, student)
  for w, g in zip(jax.tree.leaves(teacher), jax.tree.leaves(_host(state.extra["teacher"]["params"]))):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(kernels[0], initial["head"]["last_layer"]["kernel"])  # update 1 frozen
  np.testing.assert_array_equal(kernels[1], kernels[0])  # update 2 frozen
  assert np.abs(kernels[2] - kernels[1]).max() > 1e-6, "update 3 moves it"
  dense = students[0]["head"]["mlp"]["dense0"]["kernel"]
  assert np.abs(dense - initial["head"]["mlp"]["dense0"]["kernel"]).max() > 1e-6, "the rest trains from update 1"


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
  variables = jax.jit(lambda x: head.init(jax.random.key(1), x, train=False))(features)
  apply = jax.jit(lambda variables: head.apply(variables, features, train=False))
  z, logits = apply(variables)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=-1), 1.0, rtol=1e-6)
  kernel = np.asarray(variables["params"]["last_layer"]["kernel"], np.float64)
  unit = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(z, np.float64) @ unit, rtol=1e-5, atol=1e-6)
  # Rescaling the stored columns changes nothing: only their directions are used.
  scaled = jax.tree.map(lambda x: x, variables)
  scaled["params"]["last_layer"]["kernel"] = jnp.asarray(kernel * np.linspace(0.1, 7.0, 12), jnp.float32)
  np.testing.assert_allclose(apply(scaled)[1], logits, rtol=1e-5, atol=1e-6)
  assert set(variables["params"]["last_layer"]) == {"kernel"}  # no bias, no scale
  # norm_last_layer=False: a learnt per-unit scale g, starting at 1.
  free = DINOHead(hidden_dim=16, bottleneck_dim=8, out_dim=12, num_layers=3, norm_last_layer=False)
  free_vars = jax.jit(lambda x: free.init(jax.random.key(1), x, train=False))(features)
  np.testing.assert_array_equal(free_vars["params"]["last_layer"]["scale"], np.ones(12))
  g = np.linspace(0.5, 2.0, 12)
  free_vars["params"]["last_layer"]["scale"] = jnp.asarray(g, jnp.float32)
  z_free, logits_free = jax.jit(lambda v: free.apply(v, features, train=False))(free_vars)
  want = np.asarray(z_free, np.float64) @ (unit * g)
  np.testing.assert_allclose(np.asarray(logits_free), want, rtol=1e-5, atol=1e-6)


def test_head_mlp_starts_from_std_002_and_has_batch_norm_only_on_request():
  head = DINOHead(hidden_dim=512, bottleneck_dim=256, out_dim=4, num_layers=3)
  params = jax.jit(lambda x: head.init(jax.random.key(0), x, train=False))(jnp.zeros((2, 384)))
  kernel = np.asarray(params["params"]["mlp"]["dense1"]["kernel"])
  assert kernel.std() == pytest.approx(0.02, rel=0.02)
  assert "batch_stats" not in params
  with_bn = DINOHead(hidden_dim=8, bottleneck_dim=4, out_dim=4, num_layers=3, batch_norm=True)
  stats = jax.eval_shape(lambda x: with_bn.init(jax.random.key(0), x, train=False), jnp.zeros((2, 6)))["batch_stats"]
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
  shapes = jax.eval_shape(lambda: setup.task.init(jax.random.key(0), train.example_batch(setup)))["params"]
  params = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), shapes)
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 2.0, p.dtype), shapes)  # every tensor's norm >= 2
  tx = setup.task.optimizer(optax.sgd(1.0))
  opt_state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(3):
    updates, opt_state = update(grads, opt_state, params)
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
