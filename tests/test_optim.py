"""Learning-rate scaling, schedule shape, the weight-decay mask and schedule, and routing
parameter groups to their own optimizers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO

from jssl import optim, parallel, train
from jssl.config import default_config, load_config
from jssl.errors import ConfigError


def test_learning_rate_scaling_rules():
  assert optim.scaled_learning_rate(0.3, batch_size=4096, scaling="linear") == pytest.approx(4.8)
  assert optim.scaled_learning_rate(0.075, batch_size=4096, scaling="sqrt") == pytest.approx(4.8)
  with pytest.raises(ValueError, match="lr_scaling"):
    optim.scaled_learning_rate(0.3, batch_size=256, scaling="cubic")


def test_warmup_then_cosine():
  schedule = optim.learning_rate_schedule(peak_lr=2.0, warmup_steps=10, total_steps=110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(1.0)
  assert float(schedule(10)) == pytest.approx(2.0)
  assert float(schedule(60)) == pytest.approx(1.0, rel=1e-5)  # half-way through the cosine
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-6)


def test_kernel_mask_is_by_shape():
  params = {
    "conv": {"kernel": jnp.ones((3, 3, 1, 4))},
    "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
    "dense": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)},
  }
  mask = optim.kernel_mask(params)
  assert mask == {
    "conv": {"kernel": True},
    "bn": {"scale": False, "bias": False},
    "dense": {"kernel": True, "bias": False},
  }


def test_kernel_mask_skips_vit_embeddings():
  from jssl.models import make_encoder  # noqa: PLC0415

  vit = make_encoder("vit_tiny", patch_size=4, depth=1)
  params = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False))["params"]
  mask = optim.kernel_mask(params)
  assert mask["patch_embed"]["pos_embed"] is False and mask["cls_token"] is False
  assert mask["patch_embed"]["proj"]["kernel"] is True and mask["patch_embed"]["proj"]["bias"] is False
  assert mask["blocks_0"]["attn"]["qkv"]["kernel"] is True


@pytest.mark.parametrize("weight_decay_end", [-1.0, 0.4])
@pytest.mark.parametrize("name", ["lars", "sgd", "adamw"])
def test_weight_decay_skips_biases_and_bn(name, weight_decay_end):
  config = default_config().optim
  config.name, config.weight_decay, config.base_lr, config.warmup_epochs = name, 0.1, 1.0, 0.0
  config.weight_decay_end = weight_decay_end
  tx, _ = optim.make_optimizer(config, batch_size=256, total_steps=100, steps_per_epoch=10)
  params = {"kernel": jnp.full((2, 2), 3.0), "bias": jnp.full((2,), 3.0)}
  zero_grads = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  assert np.all(np.asarray(updates["bias"]) == 0), "bias must not be decayed"
  assert np.all(np.asarray(updates["kernel"]) < 0), "kernel must be decayed toward zero"
  assert not math.isnan(float(updates["kernel"][0, 0]))


def test_unknown_optimizer():
  config = default_config().optim
  config.name = "adagrad"
  with pytest.raises(ValueError, match="optim.name"):
    optim.make_optimizer(config, batch_size=256, total_steps=10, steps_per_epoch=1)


# --- weight decay on a schedule

PARAMS = {"kernel": np.linspace(-1.5, 2.0, 12).reshape(3, 4), "bias": np.linspace(0.5, 1.0, 4)}
TOTAL = 10  # steps of training; the schedules are checked at every one


def _optim_config(name, weight_decay_end):
  config = default_config().optim
  config.name, config.base_lr, config.lr_scaling, config.warmup_epochs = name, 0.5, "none", 0.0
  config.weight_decay, config.weight_decay_end = 0.04, weight_decay_end
  return config


def _grads(step):
  rng = np.random.default_rng(step)
  return {k: rng.normal(size=v.shape) for k, v in PARAMS.items()}


def _run(tx, steps=TOTAL):
  """Updates of ``tx`` applied for ``steps`` steps with ``_grads``: the list of updates (float64)."""
  params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), PARAMS)
  state, out = tx.init(params), []
  for step in range(steps):
    grads = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), _grads(step))
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append(jax.tree.map(lambda u: np.asarray(u, np.float64), updates))
  return out, state


def _reference(name, weight_decays, config):
  """The optimizer in float64 NumPy with weight decay ``weight_decays[t]`` at step t (kernel
  only); learning rate cosine from 0.5 to 0 over TOTAL steps (no warm-up)."""
  params = {k: v.copy() for k, v in PARAMS.items()}
  first = {k: np.zeros_like(v) for k, v in PARAMS.items()}  # momentum / Adam's mean
  second = {k: np.zeros_like(v) for k, v in PARAMS.items()}  # Adam's variance
  out = []
  for t in range(TOTAL):
    lr = 0.5 * 0.5 * (1 + np.cos(np.pi * t / TOTAL))
    updates = {}
    for k, g in _grads(t).items():
      decay = weight_decays[t] * params[k] if k == "kernel" else 0.0
      if name == "adamw":
        first[k] = config.b1 * first[k] + (1 - config.b1) * g
        second[k] = config.b2 * second[k] + (1 - config.b2) * g**2
        m_hat, v_hat = first[k] / (1 - config.b1 ** (t + 1)), second[k] / (1 - config.b2 ** (t + 1))
        updates[k] = -lr * (m_hat / (np.sqrt(v_hat) + 1e-8) + decay)
      elif name == "sgd":
        first[k] = g + decay + config.momentum * first[k]
        updates[k] = -lr * first[k]
      else:  # lars: trust ratio on kernels, then learning rate, then momentum
        u = g + decay
        if k == "kernel":
          u = u * config.trust_coefficient * np.linalg.norm(params[k]) / np.linalg.norm(u)
        first[k] = -lr * u + config.momentum * first[k]
        updates[k] = first[k]
      params[k] = params[k] + updates[k]
    out.append(updates)
  return out


def _dino_cosine(base_value, final_value, total):
  """DINO's utils.cosine_scheduler(base_value, final_value, epochs, niter_per_ep) with
  epochs * niter_per_ep = total and no warm-up."""
  iters = np.arange(total)
  return final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))


def test_weight_decay_schedule_is_dinos_cosine():
  schedule = optim.weight_decay_schedule(start=0.04, end=0.4, total_steps=TOTAL)
  np.testing.assert_allclose([float(schedule(t)) for t in range(TOTAL)], _dino_cosine(0.04, 0.4, TOTAL), rtol=1e-6)
  assert float(schedule(TOTAL)) == pytest.approx(0.4) and float(schedule(3 * TOTAL)) == pytest.approx(0.4)


@pytest.mark.parametrize("name", ["lars", "sgd", "adamw"])
@pytest.mark.parametrize("weight_decay_end", [-1.0, 0.4])
def test_weight_decay_matches_numpy(name, weight_decay_end):
  """Every step's update over a whole (short) training equals float64 NumPy's, with the
  decay constant at 0.04 or DINO's cosine 0.04 -> 0.4."""
  config = _optim_config(name, weight_decay_end)
  tx, _ = optim.make_optimizer(config, batch_size=256, total_steps=TOTAL, steps_per_epoch=TOTAL)
  got, _ = _run(tx)
  decays = np.full(TOTAL, 0.04) if weight_decay_end < 0 else _dino_cosine(0.04, 0.4, TOTAL)
  want = _reference(name, decays, config)
  for t in range(TOTAL):
    for k in PARAMS:
      # atol: float32 Adam steps that nearly cancel to zero
      np.testing.assert_allclose(got[t][k], want[t][k], rtol=2e-5, atol=1e-6, err_msg=f"step {t} {k}")
  if weight_decay_end >= 0:  # the schedule matters: the constant decay's updates differ
    other = _reference(name, np.full(TOTAL, 0.04), config)
    assert not np.allclose(got[-1]["kernel"], other[-1]["kernel"], rtol=1e-3)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_scheduled_decay_is_lr_times_weight_decay_times_param(name):
  """With zero gradients and no momentum yet, a step's update is exactly the decay DINO
  applies: ``-lr_t * wd_t * p`` on kernels (torch AdamW's ``p -= lr * wd * p``), 0 on biases."""
  config = _optim_config(name, 0.4)
  config.momentum = 0.0
  tx, schedule = optim.make_optimizer(config, batch_size=256, total_steps=TOTAL, steps_per_epoch=TOTAL)
  params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), PARAMS)
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  decays = _dino_cosine(0.04, 0.4, TOTAL)
  for t in range(TOTAL):
    updates, state = tx.update(zeros, state, params)
    lr = 0.5 * 0.5 * (1 + np.cos(np.pi * t / TOTAL))
    assert float(schedule(t)) == pytest.approx(lr, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(updates["kernel"], -lr * decays[t] * PARAMS["kernel"], rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(updates["bias"], 0.0)


def _optimizer_as_before(config, *, total_steps, steps_per_epoch):
  """make_optimizer as it was before weight decay could follow a schedule (float decay)."""
  schedule = optim.learning_rate_schedule(
    peak_lr=config.base_lr, warmup_steps=round(config.warmup_epochs * steps_per_epoch), total_steps=total_steps
  )
  if config.name == "lars":
    return optax.lars(
      schedule,
      weight_decay=config.weight_decay,
      weight_decay_mask=optim.kernel_mask,
      trust_coefficient=config.trust_coefficient,
      trust_ratio_mask=optim.kernel_mask,
      momentum=config.momentum,
    )
  if config.name == "sgd":
    return optax.chain(
      optax.add_decayed_weights(config.weight_decay, mask=optim.kernel_mask),
      optax.sgd(schedule, momentum=config.momentum, nesterov=False),
    )
  return optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay, mask=optim.kernel_mask)


@pytest.mark.parametrize("name", ["lars", "sgd", "adamw"])
def test_constant_weight_decay_is_the_optimizer_as_before(name):
  """Same state structure (old checkpoints restore) and bit-identical updates and states."""
  config = _optim_config(name, -1.0)
  config.warmup_epochs = 0.3
  tx, _ = optim.make_optimizer(config, batch_size=256, total_steps=TOTAL, steps_per_epoch=TOTAL)
  before = _optimizer_as_before(config, total_steps=TOTAL, steps_per_epoch=TOTAL)
  got, state = _run(tx)
  want, state_before = _run(before)
  assert jax.tree.structure(state) == jax.tree.structure(state_before)
  for a, b in zip(jax.tree.leaves((got, state)), jax.tree.leaves((want, state_before)), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [("weight_decay_end", -0.5, "weight_decay_end"), ("weight_decay", -1e-4, "weight_decay=")],
)
def test_bad_weight_decay_fails_clearly(field, value, match):
  config = _optim_config("adamw", -1.0)
  config[field] = value
  with pytest.raises(ConfigError, match=match):
    optim.make_optimizer(config, batch_size=256, total_steps=TOTAL, steps_per_epoch=TOTAL)


# --- parameter groups with optimizers of their own


def _tree():
  return {
    "encoder": {"kernel": jnp.full((2, 3), 2.0), "bias": jnp.full((3,), 2.0)},
    "head": {"kernel": jnp.full((3, 2), 2.0)},
  }


def test_route_sends_each_group_only_through_its_transform():
  params = _tree()
  grads = jax.tree.map(lambda p: jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) + 1, params)
  by_module = optim.route(
    {"train": optax.sgd(1.0), "frozen": optax.set_to_zero()}, lambda path: "frozen" if path[0] == "head" else "train"
  )
  updates, _ = by_module.update(grads, by_module.init(params), params)
  np.testing.assert_array_equal(updates["encoder"]["kernel"], -grads["encoder"]["kernel"])
  np.testing.assert_array_equal(updates["encoder"]["bias"], -grads["encoder"]["bias"])
  np.testing.assert_array_equal(updates["head"]["kernel"], 0.0)
  # Groups may be picked anywhere along the path: biases at a learning rate of their own.
  by_leaf = optim.route(
    {"kernels": optax.sgd(1.0), "biases": optax.sgd(0.25)}, lambda path: "biases" if path[-1] == "bias" else "kernels"
  )
  updates, _ = by_leaf.update(grads, by_leaf.init(params), params)
  np.testing.assert_array_equal(updates["encoder"]["bias"], -0.25 * grads["encoder"]["bias"])
  np.testing.assert_array_equal(updates["head"]["kernel"], -grads["head"]["kernel"])


def test_route_state_holds_each_groups_parameters_only():
  """Adam's moments for the head live only in the head's group (masked elsewhere)."""
  params = _tree()
  tx = optim.route({"a": optax.adam(1.0), "b": optax.sgd(1.0)}, lambda path: "b" if path[0] == "head" else "a")
  state = tx.init(params)
  adam_mu = state.inner_states["a"].inner_state[0].mu
  assert isinstance(adam_mu["head"]["kernel"], optax.MaskedNode)
  assert adam_mu["encoder"]["kernel"].shape == (2, 3)


def test_route_refuses_a_group_without_a_transform():
  tx = optim.route({"model": optax.sgd(1.0)}, lambda path: "typo" if path[0] == "head" else "model")
  with pytest.raises(ValueError, match="head/kernel.*'typo'"):
    tx.init(_tree())


def test_frozen_until_holds_updates_at_zero_then_is_the_plain_optimizer():
  """Frozen steps: exactly zero updates. After: the plain optimizer's updates, as if it had
  seen zero gradients while frozen (its momentum holds none of the frozen gradients, its
  learning-rate schedule kept counting)."""
  frozen_steps, steps = 3, 7
  plain = optax.sgd(optax.linear_schedule(1.0, 0.3, steps), momentum=0.9)
  gated = optim.frozen_until(frozen_steps, plain)
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  state_gated, state_plain = gated.init(params), plain.init(params)
  p_gated = p_plain = params
  for step in range(steps):
    grads = {"w": jnp.array([0.3, -1.0, 2.0]) * (step + 1)}
    updates, state_gated = gated.update(grads, state_gated, p_gated)
    if step < frozen_steps:
      np.testing.assert_array_equal(updates["w"], 0.0)
      grads = jax.tree.map(jnp.zeros_like, grads)
    want, state_plain = plain.update(grads, state_plain, p_plain)
    np.testing.assert_array_equal(updates["w"], want["w"])
    if step >= frozen_steps:
      assert np.all(np.asarray(updates["w"]) != 0)
    p_gated, p_plain = optax.apply_updates(p_gated, updates), optax.apply_updates(p_plain, want)
  # The update is zeroed after the optimizer too: weight decay added inside it is held back.
  decaying = optim.frozen_until(frozen_steps, optax.chain(optax.add_decayed_weights(0.1), plain))
  updates, _ = decaying.update({"w": jnp.zeros(3)}, decaying.init(params), params)
  np.testing.assert_array_equal(updates["w"], 0.0)


def _by_hand_as_before(task, tx, settings):
  """SwAV's and inpainting's optimizers as they were built before ``optim.route``."""
  group = "prototypes" if task == "swav" else "discriminator"

  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: group if k == group else "model", v) for k, v in params.items()}

  if task == "swav":

    def gate():
      steps = settings.freeze_prototypes_steps
      return optax.scale_by_schedule(lambda count: (count >= steps).astype(jnp.float32))

    return optax.multi_transform({"model": tx, group: optax.chain(gate(), tx, gate())}, labels)
  return optax.multi_transform(
    {"model": tx, group: optax.adam(settings.discriminator_lr, b1=settings.discriminator_b1)}, labels
  )


@pytest.mark.parametrize(("task", "recipe"), [("swav", "smoke.py:swav"), ("inpainting", "smoke.py:inpainting")])
def test_task_optimizer_state_is_as_before_route(task, recipe):
  """The tasks' optimizer states keep their structure and shapes: checkpoints from before
  ``optim.route`` restore."""
  config = load_config(f"{REPO / 'configs' / recipe}")
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  state = jax.eval_shape(lambda: train.init_state(setup, jax.random.key(0)))
  tx, _ = optim.make_optimizer(
    config.optim,
    batch_size=config.train.batch_size,
    total_steps=setup.total_steps,
    steps_per_epoch=setup.steps_per_epoch,
  )
  before = jax.eval_shape(_by_hand_as_before(task, tx, config[task]).init, state.params)
  assert ("prototypes" if task == "swav" else "discriminator") in state.params and jax.tree.structure(
    state.opt_state
  ) == jax.tree.structure(before)
  assert [(a.shape, a.dtype) for a in jax.tree.leaves(state.opt_state)] == [
    (b.shape, b.dtype) for b in jax.tree.leaves(before)
  ]
