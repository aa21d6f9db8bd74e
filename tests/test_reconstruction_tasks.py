"""Colorization, super-resolution and inpainting: sharded steps, the GAN step's signs, and
each smoke run (the loss falls, samples.png; export and eval of every task:
tests/test_task_runs.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from jssl import cli, parallel, train
from jssl.config import load_config
from jssl.evaluate import Holdout
from jssl.models.decoder import UNetDecoder
from jssl.tasks import TASKS
from jssl.workdir import read_metrics, read_run_config, restore_run

SMOKE = str(REPO / "configs" / "smoke.py")
RECONSTRUCTION_TASKS = ("colorization", "superres", "inpainting")


def _config(task):
  return load_config(f"{SMOKE}:{task}")


def _batch(config, seed=0):
  """Random photo-like uint8 crops: smooth colour gradients plus noise."""
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  low = rng.random((batch, 4, 4, 3))
  images = np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2) + 0.1 * rng.random((batch, size, size, 3))
  return {"image": np.clip(images * 230, 0, 255).astype(np.uint8), "label": rng.integers(0, 8, batch).astype(np.int32)}


def test_every_task_is_registered_from_its_own_module():
  assert {"simclr", *RECONSTRUCTION_TASKS} <= set(TASKS)
  for name in RECONSTRUCTION_TASKS:
    assert TASKS[name].__module__ == f"jssl.tasks.{name}"
    assert name in _config(name), "the task's defaults() became config.<name>"


@pytest.mark.slow
@pytest.mark.parametrize("task", RECONSTRUCTION_TASKS)
def test_eight_devices_match_one_device(task):
  """Same global batch on 1 and 8 devices: same loss and parameters after a step (for
  inpainting including the discriminator's Adam step), and the same second-step loss."""
  config = _config(task)
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  results = {}
  for devices in (jax.devices()[:1], jax.devices()):
    setup = train.make_setup(config, mesh=parallel.make_mesh(devices))
    state = train.create_state(setup, seed=0)
    step = train.make_train_step(setup)
    losses = []
    for seed in range(2):
      state, metrics = step(state, parallel.global_batch(_batch(config, seed), setup.mesh))
      losses.append(float(metrics["loss"]))
      if seed == 0:
        after_one = jax.device_get(state)
    results[len(devices)] = (after_one, losses)
  (one, losses_one), (eight, losses_eight) = results[1], results[8]
  if task == "inpainting":
    assert "discriminator" in one.params
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)


@pytest.mark.slow
def test_adversarial_step_moves_each_network_the_right_way():
  """Toy problem: one fixed batch, plain gradient descent on the task's own gradients.
  Stepping only the discriminator must make it better at telling crops from composites;
  stepping only the generator (adversarial loss alone) must make it worse at it."""
  config = _config("inpainting")
  config.inpainting.reconstruction_weight, config.inpainting.adversarial_weight = 0.0, 1.0
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  task, batch, rng = setup.task, jax.tree.map(jnp.asarray, _batch(config)), jax.random.key(0)
  state = train.create_state(setup, seed=0)
  params, stats = state.params, state.batch_stats
  loss_and_grads = jax.jit(task.loss_and_grads)

  def descend(params, stats, part, lr, steps):
    """``steps`` updates of one network; metrics before the first and after the last."""
    history = []
    for i in range(steps + 1):
      (loss, (stats, _, metrics, _)), grads = loss_and_grads(params, stats, {}, batch, rng, jnp.int32(i))
      history.append({k: float(v) for k, v in metrics.items()})
      if i < steps:
        params = {
          k: jax.tree.map(lambda p, g: p - lr * g, v, grads[k]) if (k == "discriminator") == (part == "d") else v
          for k, v in params.items()
        }
    return params, stats, history[0], history[-1]

  frozen_generator = params["encoder"]
  params, stats, before, after = descend(params, stats, "d", 0.25, 12)
  assert after["discriminator_loss"] < before["discriminator_loss"] - 0.1, (before, after)
  assert after["discriminator_accuracy"] >= 0.7 > before["discriminator_accuracy"], (before, after)
  for a, b in zip(jax.tree.leaves(frozen_generator), jax.tree.leaves(params["encoder"])):
    np.testing.assert_array_equal(a, b)

  frozen_discriminator = params["discriminator"]
  params, stats, before, after = descend(params, stats, "g", 0.1, 8)
  # The generator's loss is -log D(composite): it falls as the composites fool the fixed D.
  assert after["adversarial_loss"] < before["adversarial_loss"] - 0.05, (before, after)
  assert after["discriminator_loss"] > before["discriminator_loss"], (before, after)
  assert after["discriminator_accuracy"] < before["discriminator_accuracy"], (before, after)
  for a, b in zip(jax.tree.leaves(frozen_discriminator), jax.tree.leaves(params["discriminator"])):
    np.testing.assert_array_equal(a, b)


def test_adversarial_weight_zero_removes_the_discriminator():
  config = _config("inpainting")
  config.inpainting.adversarial_weight = 0.0
  setup = train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  assert "discriminator" not in jax.eval_shape(lambda: train.init_state(setup, jax.random.key(0))).params


def test_the_bottleneck_decoder_sees_only_the_deepest_map():
  """The context encoder's decoder has no skip connections: changing the encoder's finer maps
  changes nothing of its output; the U-Net's changes. Inpainting uses the bottleneck by default."""
  rng = np.random.default_rng(0)
  maps = [jnp.asarray(rng.normal(size=(2, side, side, width)), jnp.float32) for side, width in ((8, 4), (4, 6), (2, 8))]
  finer_changed = [maps[0] + 1.0, maps[1] - 1.0, maps[2]]
  for skips in (False, True):
    decoder = UNetDecoder(out_channels=3, skips=skips)
    variables = decoder.init(jax.random.key(0), maps, image_size=8, channels=3, train=False)
    # The last 1x1 conv starts at zero (a residual): give it weights so that the output shows.
    predict = variables["params"]["predict"]
    variables["params"]["predict"] = {**predict, "kernel": jnp.ones_like(predict["kernel"])}
    out, changed = (decoder.apply(variables, m, image_size=8, channels=3, train=False) for m in (maps, finer_changed))
    assert np.array_equal(out, changed) != skips
  assert _config("inpainting").inpainting.decoder == "bottleneck"
  config = _config("inpainting")
  params = jax.eval_shape(lambda: train.init_state(train.make_setup(config), jax.random.key(0))).params
  kernel_in = params["decoder"]["conv0"]["kernel"].shape[2]
  config.inpainting.decoder = "unet"
  params = jax.eval_shape(lambda: train.init_state(train.make_setup(config), jax.random.key(0))).params
  assert params["decoder"]["conv0"]["kernel"].shape[2] > kernel_in  # the joined skip map's channels


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("decoder", "resnet", "choose one of bottleneck, unet"),
    ("overlap_pixels", -1, ">= 0"),
    ("overlap_weight", -1.0, ">= 0"),
  ],
)
def test_inpainting_refuses_bad_settings(key, value, match):
  config = _config("inpainting")
  config.inpainting[key] = value
  with pytest.raises(ValueError, match=match):
    train.make_setup(config)


def test_colorization_refuses_a_grayscale_source():
  config = _config("colorization")
  config.data.source, config.data.synthetic_shape = "synthetic", (16, 16, 1)
  with pytest.raises(ValueError, match="needs colour images"):
    train.make_setup(config)


@pytest.fixture(scope="module", params=RECONSTRUCTION_TASKS)
def smoke_run(request, tmp_path_factory):
  workdir = tmp_path_factory.mktemp(request.param)
  assert cli.main(["pretrain", "--config", f"{SMOKE}:{request.param}", "--workdir", str(workdir)]) == 0
  return request.param, workdir


@pytest.mark.slow
def test_smoke_run_lowers_the_loss_and_writes_samples(smoke_run):
  task, workdir = smoke_run
  metrics = read_metrics(workdir)
  config = read_run_config(workdir)
  steps, every = config.train.steps, config.train.eval_every
  assert [m["step"] for m in metrics] == list(range(1, steps + 1))
  # Per-step losses are too noisy over 16 steps (super-resolution starts at the bicubic
  # baseline, already good), so compare the first and last states on one held-out batch.
  setup = train.make_setup(config)
  trained, _ = restore_run(setup, workdir)
  initial = train.create_state(setup, config.seed)
  images = np.asarray(train.to_host(Holdout(setup).images))  # held-out photo crops
  batch = {"image": jnp.asarray(np.round(images * 255).astype(np.uint8)), "label": jnp.zeros(len(images), jnp.int32)}
  loss = jax.jit(setup.task.loss)
  # Colorization: the same (trained) ab prior for both, so only the networks differ.
  before, after = (
    float(loss(s.params, s.batch_stats, trained.extra, batch, jax.random.key(0), jnp.int32(0))[0])
    for s in (initial, trained)
  )
  assert after < before, (before, after)
  scored = [m for m in metrics if any(k.startswith("holdout_") for k in m)]
  assert [m["step"] for m in scored] == list(range(every, steps + 1, every)), "every train.eval_every steps"
  pairs = {
    "colorization": ("ab_rmse", "ab_rmse_gray"),
    "superres": ("psnr", "psnr_bicubic"),
    "inpainting": ("masked_psnr", "masked_psnr_mean_fill"),
  }[task]
  for key in pairs:
    assert np.isfinite(scored[-1][f"holdout_{key}"]), key
  for name in ("samples.png", "augmentations.png", "curves.png"):
    assert (workdir / name).stat().st_size > 1000, name


@pytest.mark.slow
def test_colorization_l2_loss_learns_on_a_fixed_batch():
  """The seed's L2-on-ab recipe (the smoke and demo configs use the classification loss)."""
  config = _config("colorization")
  config.colorization.loss = "l2"
  setup = train.make_setup(config)
  state, step = train.create_state(setup, seed=0), train.make_train_step(setup)
  batch = parallel.global_batch(_batch(config), setup.mesh)
  assert state.params["decoder"]["predict"]["kernel"].shape[-1] == 2, "predicts a and b"
  losses = []
  for _ in range(6):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0], losses
